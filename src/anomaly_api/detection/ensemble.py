"""The anomaly ensemble: robust scaling, then a k-of-n vote of configurable detectors.

Members (``MEMBERS``): ``isolation_forest``, ``local_outlier_factor`` (novelty),
``zscore`` (robust per-feature z-score) and ``pca`` (Hotelling T² + SPE). The default is
the seed's three with a 2-of-3 vote (``DETECTOR_NAMES``).

Scaling: ``fit`` standardises the training rows robustly (median, IQR / IQR_TO_STD; see
``anomaly_api.detection.scaling``) and every member sees scaled data, so users send raw
units and LOF's distances and the PCA are not ruled by the column with the largest
unit. The z-score member is invariant to this per-feature affine map (its median and
MAD move with the data), so its decisions are unchanged; the IsolationForest is too,
up to where its random split points fall.

Score definitions (stable across versions; ``SCORE_DEFINITION`` names them):

* Each detector ``i`` gives ``score_samples`` ``s_i`` (lower = more abnormal) and has a
  threshold ``offsets_[i]``; it votes "anomaly" when ``s_i < offsets_[i]``.
* Its *margin* is ``m_i = (offsets_[i] - s_i) / scales_[i]``: positive when it votes
  anomaly, in units of the spread (IQR) of that detector's scores on the training data.
* ``anomaly_score`` is the ``min_votes``-th largest margin. It is positive exactly when
  at least ``min_votes`` detectors vote anomaly and never decreases when a margin grows.
* ``confidence = sigmoid(|anomaly_score|)``: 0.5 on the decision boundary.
* ``severity = a / (1 + a)`` with ``a = max(anomaly_score, 0)``: 0 for every reading
  the ensemble calls normal, 0.5 one IQR beyond the threshold, towards 1 beyond.
* ``contributions``: see ``anomaly_api.detection.contributions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import LocalOutlierFactor
from sklearn.utils.validation import check_is_fitted, validate_data

from anomaly_api.detection.contributions import feature_contributions, severity_from_score
from anomaly_api.detection.pca_monitor import PCAMonitorDetector
from anomaly_api.detection.scaling import apply_scaling, fit_robust_scaling
from anomaly_api.detection.voting import ZERO, confidence_from_score, kth_largest
from anomaly_api.detection.zscore import ZScoreDetector

MEMBERS: tuple[str, ...] = ("isolation_forest", "local_outlier_factor", "zscore", "pca")
"""Every detector the ensemble can hold, by name."""
DETECTOR_NAMES: tuple[str, ...] = ("isolation_forest", "local_outlier_factor", "zscore")
"""The default members (the seed's three)."""
SCORE_DEFINITION = "kth-largest-iqr-margin/v1"
_MIN_SCALE = 1e-12


@dataclass(slots=True)
class EnsembleOutput:
    """Everything the ensemble decides about a batch, one row per sample.

    Not frozen, as the other per-request records: a frozen dataclass sets each field
    through ``object.__setattr__``, several times the cost of a plain one's ``__init__``.
    """

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
    severity: NDArray[np.float64]
    """``a / (1 + a)`` with ``a = max(anomaly_score, 0)``: in [0, 1), 0 when normal."""
    contributions: NDArray[np.float64] | None = None
    """Each feature's share of the anomaly, shape (n_samples, n_features); rows are
    non-negative and sum to 1. None when ``combine`` was called without ``X``."""
    finite: bool = False
    """True when whoever computed it has checked that every score and anomaly score is
    finite and every share is a number (the compiled rule of the fast scorer does);
    False when nobody has (``decide``)."""

    @classmethod
    def from_margins(
        cls,
        scores: NDArray[np.float64],
        margins: NDArray[np.float64],
        anomaly_score: NDArray[np.float64],
        contributions: NDArray[np.float64] | None = None,
    ) -> EnsembleOutput:
        """The output of the decision rule: a vote where a detector's ``margins`` (its
        threshold minus its score, in its own units) is positive; ``anomaly_score`` decides."""
        return cls(
            scores=scores,
            votes=np.greater(margins, ZERO),
            anomaly_score=anomaly_score,
            confidence=confidence_from_score(anomaly_score),
            is_anomaly=np.greater(anomaly_score, ZERO),
            severity=severity_from_score(anomaly_score),
            contributions=contributions,
        )


def validate_members(detectors: Sequence[str], min_votes: int) -> tuple[str, ...]:
    """The member names as a tuple; ValueError for unknown, repeated or no names or a bad K."""
    names = tuple(detectors)
    unknown = [name for name in names if name not in MEMBERS]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; choose from {', '.join(MEMBERS)}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"detectors must be distinct and at least one, got {list(names)}")
    if not 1 <= min_votes <= len(names):
        raise ValueError(f"min_votes must be in [1, {len(names)}], got {min_votes}")
    return names


class AnomalyEnsemble(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Robustly scaled, ``min_votes``-of-n vote of the chosen detectors.

    ``score_samples(X) = -anomaly_score`` (lower = more abnormal), ``offset_ = 0``,
    ``decision_function = score_samples - offset_`` and ``predict`` returns -1 where
    the decision is negative, as scikit-learn's outlier detectors do.

    Parameters
    ----------
    detectors : sequence of str, default=DETECTOR_NAMES
        Members, from ``MEMBERS``; their order is the order of every score column.
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
    pca_components : int, float or None, default=None
        ``n_components`` of the PCA member (None: parallel analysis).
    random_state : int, default=0
        Seed of the IsolationForest and the parallel analysis; fixes the whole fit.

    Attributes
    ----------
    detectors_ : tuple of str
        The fitted members, in score-column order.
    center_, scale_ : ndarray of shape (n_features,)
        Input standardisation: members see ``(X - center_) / scale_``.
    scale_rule_ : ndarray of shape (n_features,)
        ``"iqr"``, ``"std"`` (fallback where the IQR is zero) or ``"floor"`` (a feature
        constant in training: ``scaling.spread_floor``) per feature.
    isolation_forest_, local_outlier_factor_, zscore_, pca_ : estimators
        The fitted members that are in ``detectors_`` (LOF with ``novelty=True``).
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
        detectors: Sequence[str] = DETECTOR_NAMES,
        n_estimators: int = 100,
        max_samples: int | str = "auto",
        n_neighbors: int = 20,
        contamination: float = 0.05,
        min_votes: int = 2,
        pca_components: int | float | None = None,
        random_state: int = 0,
    ) -> None:
        self.detectors = detectors
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.n_neighbors = n_neighbors
        self.contamination = contamination
        self.min_votes = min_votes
        self.pca_components = pca_components
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Fit the scaling and every member on (mostly normal) training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        """
        names = validate_members(self.detectors, self.min_votes)
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        data = validate_data(self, X, dtype=np.float64, reset=True)
        if "local_outlier_factor" in names and data.shape[0] <= self.n_neighbors:
            raise ValueError(
                f"need more than n_neighbors={self.n_neighbors} samples, got {data.shape[0]}"
            )
        self.center_, self.scale_, self.scale_rule_ = fit_robust_scaling(data)
        scaled = apply_scaling(data, self.center_, self.scale_)
        self.detectors_ = names
        columns = []
        for name in names:
            if name == "isolation_forest":
                self.isolation_forest_ = IsolationForest(
                    n_estimators=self.n_estimators,
                    max_samples=self.max_samples,
                    random_state=self.random_state,
                ).fit(scaled)
                columns.append(self.isolation_forest_.score_samples(scaled))
            elif name == "local_outlier_factor":
                self.local_outlier_factor_ = LocalOutlierFactor(
                    n_neighbors=self.n_neighbors, novelty=True
                ).fit(scaled)
                # LOF's own training scores leave each point out of its neighbourhood;
                # scoring them as new samples would count each point as its own neighbour.
                columns.append(self.local_outlier_factor_.negative_outlier_factor_)
            elif name == "zscore":
                self.zscore_ = ZScoreDetector(contamination=self.contamination).fit(scaled)
                columns.append(self.zscore_.score_samples(scaled))
            else:
                self.pca_ = PCAMonitorDetector(
                    n_components=self.pca_components, random_state=self.random_state
                ).fit(scaled)
                columns.append(self.pca_.score_samples(scaled))
        train_scores = np.column_stack(columns)
        self.offsets_ = np.percentile(train_scores, 100.0 * self.contamination, axis=0)
        q75, q25 = np.percentile(train_scores, [75.0, 25.0], axis=0)
        self.scales_ = np.maximum(q75 - q25, _MIN_SCALE)
        self.offset_ = 0.0
        return self

    def set_offsets(self, offsets: ArrayLike) -> Self:
        """Replace the per-detector thresholds (e.g. after tuning them on labelled data)."""
        check_is_fitted(self)
        values = np.asarray(offsets, dtype=np.float64)
        n = len(self.detectors_)
        if values.shape != (n,) or not np.all(np.isfinite(values)):
            raise ValueError(f"offsets must be {n} finite numbers, got {values!r}")
        self.offsets_ = values
        return self

    def scale(self, X: ArrayLike) -> NDArray[np.float64]:
        """Validated ``X`` in the members' units: ``(X - center_) / scale_``."""
        check_is_fitted(self)
        data = validate_data(self, X, dtype=np.float64, reset=False)
        return apply_scaling(data, self.center_, self.scale_)

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors)."""
        return self.scaled_scores(X)[1]

    def scaled_scores(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``X`` in the members' units (``scale``) and each detector's ``score_samples``:
        what ``decide`` takes, the rows scaled once."""
        scaled = self.scale(X)
        columns = []
        for name in self.detectors_:
            member = getattr(self, f"{name}_")
            columns.append(member.score_samples(scaled))
        return scaled, np.column_stack(columns)

    def combine(self, scores: NDArray[np.float64], X: ArrayLike | None = None) -> EnsembleOutput:
        """Turn detector scores into votes, the anomaly score, confidence and severity.

        Any path that computes ``detector_scores`` (such as a faster one) calls this,
        so the decision rule lives in one place. With the raw rows ``X`` (the same rows
        the scores are of) it also computes ``contributions``; without, they are None.
        """
        if X is None:
            return self.decide(scores)
        self._require_fitted()
        # The rows were already validated by whatever computed ``scores``; only the shape
        # is checked (in ``decide``), so this stays cheap for a single row.
        data = np.asarray(X, dtype=np.float64)
        return self.decide(scores, apply_scaling(data, self.center_, self.scale_))

    def decide(
        self, scores: NDArray[np.float64], scaled: NDArray[np.float64] | None = None
    ) -> EnsembleOutput:
        """The decision rule itself (``combine``), for rows already in the members' units
        (``scaled``, as ``scaled_scores`` gives them; without, no contributions)."""
        self._require_fitted()
        margins = (self.offsets_ - scores) / self.scales_
        anomaly_score = kth_largest(margins, self.min_votes)
        contributions = None
        if scaled is not None:
            if scaled.shape != (scores.shape[0], self.n_features_in_):
                raise ValueError(
                    f"the rows must have shape ({scores.shape[0]}, {self.n_features_in_}) "
                    f"to match the scores, got {scaled.shape}"
                )
            contributions = self._contributions(scaled)
        return EnsembleOutput.from_margins(scores, margins, anomaly_score, contributions)

    def _require_fitted(self) -> None:
        if not hasattr(self, "offsets_"):  # check_is_fitted's estimator tags cost a row's rule
            raise NotFittedError("this AnomalyEnsemble is not fitted yet; call fit first")

    def contributions(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each feature's share of each row's anomaly, shape (n_samples, n_features)."""
        return self._contributions(self.scale(X))

    def _contributions(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        residual = None
        if "pca" in self.detectors_:
            pca = self.pca_
            centred = scaled - pca.mean_
            residual = centred - (centred @ pca.components_.T) @ pca.components_
        return feature_contributions(scaled, residual)

    def explain(self, X: ArrayLike) -> EnsembleOutput:
        """Scores, votes, decision, severity and contributions for each sample:
        ``decide`` on ``scaled_scores(X)``."""
        scaled, scores = self.scaled_scores(X)
        return self.decide(scores, scaled)

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """Negated anomaly score (lower = more abnormal)."""
        return -self.combine(self.detector_scores(X)).anomaly_score

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> NDArray[np.int_]:
        """-1 for anomalies, +1 for normal samples."""
        result: NDArray[np.int_] = np.where(self.decision_function(X) < 0, -1, 1)
        return result
