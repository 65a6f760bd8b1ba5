"""LocalOutlierFactor (novelty): what the fast scorers need from the fitted estimator.

scikit-learn's novelty ``score_samples`` is, for a sample with neighbours ``o_1..o_k``
at distances ``d_j``::

    lrd(x) = 1 / (mean_j max(d_j, k_distance(o_j)) + 1e-10)
    score(x) = -mean_j lrd(o_j) / lrd(x)

The training side (``k_distance``, ``lrd``) is fixed at fit time, so only the k-NN
query of the new sample is needed.

:func:`read_fitted_lof` is the ONE place in the package that reads private attributes
of a fitted scikit-learn estimator. scikit-learn exposes ``n_neighbors_``,
``effective_metric_``, ``n_samples_fit_`` and ``negative_outlier_factor_`` publicly, but
not the training rows (``_fit_X``), their neighbour distances (``_distances_fit_X_``),
their lrd (``_lrd``) nor the neighbour algorithm it chose (``_fit_method``). A
scikit-learn release may rename or redefine them: the reader then raises
:class:`IncompatibleEstimatorError`, and ``FastScorer`` compares its scores with the
estimator's own ``score_samples`` on a probe set at load time, so a silent change in
meaning fails loudly as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from sklearn.neighbors import LocalOutlierFactor

LRD_EPSILON = 1e-10
"""Added to the mean reachability distance by scikit-learn (duplicates > k)."""
PARALLEL_QUERY_ROWS = 64
"""From this many rows the neighbour query uses every core; below, threads cost more."""
LEAF_SIZE = 48
"""Points per KD-tree leaf (``numpy`` backend). For k=20 over 10,000 rows, 32-96 answered
1,000-row queries ~1.5x faster than SciPy's default of 16 (the neighbours come from fewer
leaves)."""
PRIVATE_ATTRIBUTES = ("_fit_X", "_distances_fit_X_", "_lrd", "_fit_method")
"""What :func:`read_fitted_lof` reads beyond scikit-learn's public fitted attributes."""


class IncompatibleEstimatorError(RuntimeError):
    """The fitted scikit-learn estimator does not hold what the fast scorer reads.

    Raised at model load time, never per request: serve with
    ``ANOMALY_INFERENCE_BACKEND=sklearn`` (the reference), or adapt ``fast/lof.py``.
    """


@dataclass(frozen=True)
class FittedLof:
    """A fitted novelty LocalOutlierFactor's training side, as flat float64 arrays.

    Attributes
    ----------
    n_neighbors : int
    train_rows : ndarray of shape (n_train, n_features)
        The training rows, C-contiguous.
    k_distance : ndarray of shape (n_train,)
        Distance of each training point to its k-th neighbour (itself excluded).
    lrd : ndarray of shape (n_train,)
        Local reachability density of each training point.
    brute : bool
        scikit-learn searches neighbours by brute force (GEMM-based distances, used for
        wide data): the fast scorers then ask the estimator for the neighbours.
    """

    n_neighbors: int
    train_rows: NDArray[np.float64]
    k_distance: NDArray[np.float64]
    lrd: NDArray[np.float64]
    brute: bool


def _private(lof: LocalOutlierFactor, name: str) -> Any:
    try:
        return getattr(lof, name)
    except AttributeError:
        raise IncompatibleEstimatorError(
            f"scikit-learn {sklearn.__version__}: LocalOutlierFactor has no {name!r}, which "
            "the fast scorer reads (anomaly_api/detection/fast/lof.py); serve with "
            "ANOMALY_INFERENCE_BACKEND=sklearn or adapt read_fitted_lof"
        ) from None


def read_fitted_lof(lof: LocalOutlierFactor) -> FittedLof:
    """Read the training side of ``lof``, checked against its public attributes."""
    if not getattr(lof, "novelty", False):
        raise ValueError("the fast scorer needs a LocalOutlierFactor fitted with novelty=True")
    if lof.effective_metric_ != "euclidean":
        raise ValueError(f"only the Euclidean metric is supported, got {lof.effective_metric_}")
    k = int(lof.n_neighbors_)
    n_train = int(lof.n_samples_fit_)
    fit_X = np.ascontiguousarray(_private(lof, "_fit_X"), dtype=np.float64)
    distances = np.asarray(_private(lof, "_distances_fit_X_"), dtype=np.float64)
    lrd = np.ascontiguousarray(_private(lof, "_lrd"), dtype=np.float64)
    fit_method = _private(lof, "_fit_method")
    expected = {
        "_fit_X": (fit_X.ndim == 2 and fit_X.shape[0] == n_train, fit_X.shape),
        "_distances_fit_X_": (distances.shape == (n_train, k), distances.shape),
        "_lrd": (lrd.shape == (n_train,), lrd.shape),
        "_fit_method": (fit_method in ("ball_tree", "kd_tree", "brute"), fit_method),
    }
    for name, (ok, got) in expected.items():
        if not ok:
            raise IncompatibleEstimatorError(
                f"scikit-learn {sklearn.__version__}: LocalOutlierFactor.{name} is {got!r}, "
                f"not what the fast scorer expects for n_samples_fit_={n_train}, "
                f"n_neighbors_={k} (anomaly_api/detection/fast/lof.py)"
            )
    return FittedLof(
        n_neighbors=k,
        train_rows=fit_X,
        k_distance=np.ascontiguousarray(distances[:, k - 1]),
        lrd=lrd,
        brute=fit_method == "brute",
    )


class NeighbourIndex:
    """Exact k-nearest-neighbour queries against the LOF's training data (``numpy`` backend).

    A SciPy ``cKDTree`` over the training rows; for data where scikit-learn itself uses
    brute force (wide data), the estimator's own ``kneighbors``, whose GEMM-based
    distances differ from exact ones by ~1e-8, so that the neighbours stay identical.
    """

    def __init__(self, fitted: FittedLof, lof: LocalOutlierFactor) -> None:
        self.n_neighbors = fitted.n_neighbors
        self._fallback = lof if fitted.brute else None
        self._tree = None if fitted.brute else cKDTree(fitted.train_rows, leafsize=LEAF_SIZE)

    def query(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Distances and training indices of each row's ``n_neighbors`` nearest points."""
        if self._fallback is not None:
            dist, ind = self._fallback.kneighbors(X, n_neighbors=self.n_neighbors)
        else:
            assert self._tree is not None
            workers = -1 if X.shape[0] >= PARALLEL_QUERY_ROWS else 1
            dist, ind = self._tree.query(X, k=self.n_neighbors, workers=workers)
        shape = (X.shape[0], self.n_neighbors)
        return (
            np.ascontiguousarray(dist, dtype=np.float64).reshape(shape),
            np.ascontiguousarray(ind, dtype=np.int64).reshape(shape),
        )
