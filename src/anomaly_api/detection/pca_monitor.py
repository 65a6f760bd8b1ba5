"""PCA process monitoring: Hotelling's T² on the retained components and SPE (Q) on the rest.

For a sample ``x`` (already standardised), ``d = x - mean_`` and scores ``t = d P`` on the
``n_components_`` retained principal directions ``P`` (columns of ``components_.T``)::

    T²(x) = sum_k t_k² / variance_k          # inside the model plane
    Q(x)  = || d - t Pᵀ ||²                  # squared prediction error, off the plane

Each is divided by its limit, the ``percentile``-th percentile of its training values, and
``score_samples(x) = -max(T² / t2_limit_, Q / q_limit_)``: lower is more abnormal, and
``score_samples < -1`` exactly when either statistic exceeds its limit, so ``offset_ = -1``.

Number of components (``n_components=None``): Horn's parallel analysis. A component is
kept while its share of the variance exceeds the mean share of the same component in
``_PARALLEL_DRAWS`` seeded Gaussian-noise matrices of the training shape. On the
Tennessee Eastman normal run (52 variables, 500 rows) this keeps 12 components; the
textbook reference uses 9 and a 90 % cumulative-variance rule would keep 31 (see
``docs/which-sensor.md``). An int keeps that many; a float in (0, 1) keeps the fewest
components reaching that cumulative share of the variance.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted, validate_data

_PARALLEL_DRAWS = 10
_PARALLEL_MAX_ROWS = 2000
_MIN_LIMIT = 1e-12


def pca_statistics(
    X: NDArray[np.float64],
    mean: NDArray[np.float64],
    components: NDArray[np.float64],
    variances: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """T², Q and the per-feature residual of each row (one implementation for every path).

    Returns
    -------
    t2 : ndarray of shape (n_samples,)
    q : ndarray of shape (n_samples,)
    residual : ndarray of shape (n_samples, n_features)
        ``d - t Pᵀ``; ``q`` is the sum of its squares.
    """
    centred = X - mean
    t = centred @ components.T
    t2: NDArray[np.float64] = np.sum(t * t / variances, axis=1)
    residual: NDArray[np.float64] = centred - t @ components
    q: NDArray[np.float64] = np.sum(residual * residual, axis=1)
    return t2, q, residual


def pca_score(
    t2: NDArray[np.float64], q: NDArray[np.float64], t2_limit: float, q_limit: float
) -> NDArray[np.float64]:
    """``-max(T² / t2_limit, Q / q_limit)``."""
    result: NDArray[np.float64] = -np.maximum(t2 / t2_limit, q / q_limit)
    return result


def parallel_analysis(X: NDArray[np.float64], random_state: int = 0) -> int:
    """Components whose variance share beats that of Gaussian noise of the same shape."""
    n_samples, n_features = X.shape
    ratios = PCA(svd_solver="full").fit(X).explained_variance_ratio_
    rng = np.random.default_rng(random_state)
    rows = min(n_samples, _PARALLEL_MAX_ROWS)
    noise = np.mean(
        [
            PCA(svd_solver="full")
            .fit(rng.normal(size=(rows, n_features)))
            .explained_variance_ratio_
            for _ in range(_PARALLEL_DRAWS)
        ],
        axis=0,
    )
    above = ratios > noise
    count = n_features if above.all() else int(np.argmin(above))
    # Keep at least one component, and leave at least one for the residual.
    return int(min(max(count, 1), n_features - 1))


class PCAMonitorDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Hotelling T² + SPE (Q) monitor on a PCA model (see the module docstring).

    Parameters
    ----------
    n_components : int, float or None, default=None
        None: parallel analysis; int: that many; float in (0, 1): cumulative variance.
    percentile : float, default=99.0
        Percentile of the training T² and Q taken as their limits.
    random_state : int, default=0
        Seed of the parallel analysis' noise matrices.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    components_ : ndarray of shape (n_components_, n_features)
    explained_variance_ : ndarray of shape (n_components_,)
    n_components_ : int
    t2_limit_, q_limit_ : float
        The ``percentile``-th percentile of T² and Q on the training rows.
    offset_ : float
        Always -1: a row is flagged when either statistic exceeds its limit.
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        n_components: int | float | None = None,
        percentile: float = 99.0,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.percentile = percentile
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Fit the PCA model and the limits of T² and Q.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            At least two features.
        y : Ignored
        """
        data = validate_data(self, X, dtype=np.float64, reset=True)
        n_features = data.shape[1]
        if n_features < 2:
            raise ValueError("the PCA monitor needs at least two features")
        if not 0.0 < self.percentile < 100.0:
            raise ValueError(f"percentile must be in (0, 100), got {self.percentile}")
        chosen = self.n_components
        if chosen is None:
            count = parallel_analysis(data, self.random_state)
        elif isinstance(chosen, float) and 0.0 < chosen < 1.0:
            ratios = PCA(svd_solver="full").fit(data).explained_variance_ratio_
            count = min(int(np.searchsorted(np.cumsum(ratios), chosen) + 1), n_features - 1)
        elif isinstance(chosen, int) and 1 <= chosen < n_features:
            count = chosen
        else:
            raise ValueError(
                f"n_components must be None, an int in [1, {n_features - 1}] or a float "
                f"in (0, 1), got {chosen!r}"
            )
        pca = PCA(n_components=count, svd_solver="full").fit(data)
        self.mean_ = np.ascontiguousarray(pca.mean_, dtype=np.float64)
        self.components_ = np.ascontiguousarray(pca.components_, dtype=np.float64)
        self.explained_variance_ = np.maximum(
            np.asarray(pca.explained_variance_, dtype=np.float64), _MIN_LIMIT
        )
        self.n_components_ = count
        t2, q, _ = self.statistics(data)
        self.t2_limit_ = max(float(np.percentile(t2, self.percentile)), _MIN_LIMIT)
        self.q_limit_ = max(float(np.percentile(q, self.percentile)), _MIN_LIMIT)
        self.offset_ = -1.0
        return self

    def statistics(
        self, X: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """T², Q and the residual of validated rows (see :func:`pca_statistics`)."""
        return pca_statistics(X, self.mean_, self.components_, self.explained_variance_)

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """``-max(T² / t2_limit_, Q / q_limit_)`` (lower = more abnormal)."""
        check_is_fitted(self)
        data = validate_data(self, X, dtype=np.float64, reset=False)
        t2, q, _ = self.statistics(data)
        return pca_score(t2, q, self.t2_limit_, self.q_limit_)

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:
        """-1 for anomalies, +1 for normal samples."""
        result: NDArray[np.int_] = np.where(self.decision_function(X) < 0, -1, 1)
        return result
