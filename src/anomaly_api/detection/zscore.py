"""Per-feature robust z-score detector."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from anomaly_api.detection.scaling import constant_columns, mad_std, spread_floor


class ZScoreDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Flag samples whose largest robust per-feature z-score is extreme.

    ``score_samples(X) = -max_j |X[:, j] - center_[j]| / scale_[j]``: lower is more
    abnormal, following scikit-learn's outlier detectors. ``decision_function`` is
    ``score_samples - offset_`` and ``predict`` returns -1 where it is negative.

    Parameters
    ----------
    contamination : float, default=0.05
        Share of training samples expected to be anomalous; ``offset_`` is the
        score at that percentile of the training scores.

    Attributes
    ----------
    center_ : ndarray of shape (n_features,)
        Per-feature median of the training data.
    scale_ : ndarray of shape (n_features,)
        Per-feature robust standard deviation (``mad_std``: the median and MAD keep
        anomalies in the training data from inflating it; the standard deviation where
        the MAD is zero; ``spread_floor`` where the feature is constant).
    offset_ : float
        Threshold on ``score_samples``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def __init__(self, *, contamination: float = 0.05) -> None:
        self.contamination = contamination

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Estimate the robust centre and scale of each feature.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        """
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        data = validate_data(self, X, dtype=np.float64, reset=True)
        center = np.median(data, axis=0)
        scale = mad_std(data)
        fallback = data.std(axis=0)
        scale = np.where(scale > 0, scale, fallback)
        scale = np.where(constant_columns(data), spread_floor(center), scale)
        self.center_ = center
        self.scale_ = scale
        self.offset_ = float(np.percentile(self._score(data), 100.0 * self.contamination))
        return self

    def _score(self, data: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = -np.max(np.abs(data - self.center_) / self.scale_, axis=1)
        return result

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """Negated largest absolute robust z-score of each sample (lower = more abnormal)."""
        check_is_fitted(self)
        data = validate_data(self, X, dtype=np.float64, reset=False)
        return self._score(data)

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:
        """-1 for anomalies, +1 for normal samples."""
        result: NDArray[np.int_] = np.where(self.decision_function(X) < 0, -1, 1)
        return result
