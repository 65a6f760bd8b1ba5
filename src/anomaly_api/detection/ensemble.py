"""The anomaly ensemble: IsolationForest + LocalOutlierFactor (novelty) + robust z-score.

Score definitions (stable across versions; ``SCORE_DEFINITION`` names them):

* Each detector ``i`` gives ``score_samples`` ``s_i`` (lower = more abnormal) and has a
  threshold ``offsets_[i]``; it votes "anomaly" when ``s_i < offsets_[i]``.
* Its *margin* is ``m_i = (offsets_[i] - s_i) / scales_[i]``: positive when it votes
  anomaly, in units of the spread (IQR) of that detector's scores on the training data,
  so that the three detectors are comparable.
* ``anomaly_score`` is the ``min_votes``-th largest margin (the median of three for the
  2-of-3 rule). It is positive exactly when at least ``min_votes`` detectors vote
  anomaly, and it never decreases when any detector's margin increases.
* ``confidence = sigmoid(|anomaly_score|)``: 0.5 on the decision boundary, towards 1
  far from it, on either side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.utils.validation import check_is_fitted, validate_data

from anomaly_api.detection.voting import confidence_from_score, kth_largest
from anomaly_api.detection.zscore import ZScoreDetector

DETECTOR_NAMES: tuple[str, ...] = ("isolation_forest", "local_outlier_factor", "zscore")
SCORE_DEFINITION = "kth-largest-iqr-margin/v1"
_MIN_SCALE = 1e-12


@dataclass(frozen=True)
class EnsembleOutput:
    """Everything the ensemble decides about a batch, one row per sample."""

    scores: NDArray[np.float64]
    """Each detector's ``score_samples``, shape (n_samples, n_detectors)."""
    votes: NDArray[np.bool_]
    """True where a detector votes anomaly, shape (n_samples, n_detectors)."""
    anomaly_score: NDArray[np.float64]
    """Continuous score, higher = more anomalous, positive = anomaly."""
    confidence: NDArray[np.float64]
    """Confidence in the decision, in [0.5, 1)."""
    is_anomaly: NDArray[np.bool_]
    """The ``min_votes``-of-n decision."""


class AnomalyEnsemble(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Majority vote of IsolationForest, LocalOutlierFactor and a robust z-score.

    ``score_samples(X) = -anomaly_score`` (lower = more abnormal), ``offset_ = 0``,
    ``decision_function = score_samples - offset_`` and ``predict`` returns -1 where
    the decision is negative, as scikit-learn's outlier detectors do.

    Parameters
    ----------
    n_estimators : int, default=100
        Trees in the IsolationForest.
    max_samples : int or "auto", default="auto"
        Samples drawn to build each tree.
    n_neighbors : int, default=20
        Neighbours used by LocalOutlierFactor.
    contamination : float, default=0.05
        Share of training samples each detector flags before thresholds are tuned.
    min_votes : int, default=2
        How many detectors must agree for a sample to be anomalous.
    random_state : int, default=0
        Seed of the IsolationForest; fixes the whole fit.

    Attributes
    ----------
    isolation_forest_ : IsolationForest
    local_outlier_factor_ : LocalOutlierFactor
        Fitted with ``novelty=True`` so it can score new samples.
    zscore_ : ZScoreDetector
    offsets_ : ndarray of shape (n_detectors,)
        Threshold of each detector on its ``score_samples``.
    scales_ : ndarray of shape (n_detectors,)
        Interquartile range of each detector's training scores.
    offset_ : float
        Threshold on the ensemble's ``score_samples``; always 0.
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_samples: int | str = "auto",
        n_neighbors: int = 20,
        contamination: float = 0.05,
        min_votes: int = 2,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.n_neighbors = n_neighbors
        self.contamination = contamination
        self.min_votes = min_votes
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Fit the three detectors on (mostly normal) training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        """
        if not 1 <= self.min_votes <= len(DETECTOR_NAMES):
            raise ValueError(
                f"min_votes must be in [1, {len(DETECTOR_NAMES)}], got {self.min_votes}"
            )
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        data = validate_data(self, X, dtype=np.float64, reset=True)
        if data.shape[0] <= self.n_neighbors:
            raise ValueError(
                f"need more than n_neighbors={self.n_neighbors} samples, got {data.shape[0]}"
            )
        self.isolation_forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
        ).fit(data)
        self.local_outlier_factor_ = LocalOutlierFactor(
            n_neighbors=self.n_neighbors, novelty=True
        ).fit(data)
        self.zscore_ = ZScoreDetector(contamination=self.contamination).fit(data)
        # LOF's own training scores leave each point out of its neighbourhood; scoring
        # the training points as new samples would count each point as its own neighbour.
        train_scores = np.column_stack(
            [
                self.isolation_forest_.score_samples(data),
                self.local_outlier_factor_.negative_outlier_factor_,
                self.zscore_.score_samples(data),
            ]
        )
        self.offsets_ = np.percentile(train_scores, 100.0 * self.contamination, axis=0)
        q75, q25 = np.percentile(train_scores, [75.0, 25.0], axis=0)
        self.scales_ = np.maximum(q75 - q25, _MIN_SCALE)
        self.offset_ = 0.0
        return self

    def set_offsets(self, offsets: ArrayLike) -> Self:
        """Replace the per-detector thresholds (e.g. after tuning them on labelled data)."""
        check_is_fitted(self)
        values = np.asarray(offsets, dtype=np.float64)
        if values.shape != (len(DETECTOR_NAMES),) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"offsets must be {len(DETECTOR_NAMES)} finite numbers, got {values!r}"
            )
        self.offsets_ = values
        return self

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors)."""
        check_is_fitted(self)
        data = validate_data(self, X, dtype=np.float64, reset=False)
        return np.column_stack(
            [
                self.isolation_forest_.score_samples(data),
                self.local_outlier_factor_.score_samples(data),
                self.zscore_.score_samples(data),
            ]
        )

    def combine(self, scores: NDArray[np.float64]) -> EnsembleOutput:
        """Turn detector scores into votes, the anomaly score and the confidence.

        Any path that computes ``detector_scores`` (such as a faster one) calls this,
        so the decision rule lives in one place.
        """
        check_is_fitted(self)
        margins = (self.offsets_ - scores) / self.scales_
        anomaly_score = kth_largest(margins, self.min_votes)
        return EnsembleOutput(
            scores=scores,
            votes=margins > 0,
            anomaly_score=anomaly_score,
            confidence=confidence_from_score(anomaly_score),
            is_anomaly=anomaly_score > 0,
        )

    def explain(self, X: ArrayLike) -> EnsembleOutput:
        """Scores, votes and decision of every detector for each sample."""
        return self.combine(self.detector_scores(X))

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """Negated anomaly score (lower = more abnormal)."""
        return -self.explain(X).anomaly_score

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:
        """-1 for anomalies, +1 for normal samples."""
        result: NDArray[np.int_] = np.where(self.decision_function(X) < 0, -1, 1)
        return result
