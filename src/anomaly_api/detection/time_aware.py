"""A time-aware anomaly model: window features of each reading plus a detector.

Pipeline of one reading (see ``anomaly_api.detection.windows`` for the features):

1. scale each channel robustly (``fit_robust_scaling``: training median and the IQR of
   a standard normal, so one unit is about one standard deviation of normal readings;
   a channel constant in training gets a floor on its spread, so that its window
   features stay at their training value while it stays constant and any move of it is
   far out);
2. window features of the reading from the trailing window of ``window`` readings of
   its stream, among them the residual off a PCA subspace fitted on the training
   readings (relations between channels; channels' squared residuals sum to SPE/Q) and,
   opt-in (``lag_residual``), off a dynamic PCA of the last ``lags`` readings of every
   channel (relations across channels and time);
3. standardise every feature with its training median and robust spread (``z``); a
   mean over the short window (``shift``, ``residual_mean``) then counts only as far as
   the newest reading backs it (``mean_gate``, see ``gate_means``), so that the
   readings right after an event ends, whose short window still holds it, are not
   flagged;
4. a detector on ``z`` decides. The default, ``"top4_z"``, flags a reading when the
   root of the sum of its four largest ``z²`` passes a threshold; ``"max_z"`` uses the
   largest ``|z|`` alone (per-feature control limits, as Shewhart/CUSUM charts and the
   SPE do). Four features let the evidence of two channels of a broken relation add up.
   ``"top4_relations"`` (opt-in) also looks at the relation features alone: the
   root of the two largest per-channel relation ``z²`` (``residual``, ``residual_mean``),
   so that two channels off their relation in opposite directions are not drowned by
   all the other features; each statistic is divided by its 99th training percentile
   and the larger ratio decides (one score, one threshold): more correlation breaks
   found on the synthetic data, but more false alarms on TEP and on a drifting seed
   (docs/time-aware.md). ``"ensemble"`` runs the project's ``AnomalyEnsemble`` on ``z``
   instead (``make_detector`` is the one place that builds it).

Readings without a full window yet (a stream's first ``window - 1`` readings, or those
right after a long gap) are scored by a point-wise ``AnomalyEnsemble`` on the scaled
reading alone and marked ``warming_up``.

Contributions: each channel's share is the sum of its features' squared ``z`` (excess
over 1) divided by the total over channels; shares are non-negative and sum to 1. Its
``why`` describes the feature with the largest ``|z|`` of that channel in words.

This module imports numpy and scikit-learn only (no pandas: the serving image has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import isinf, isnan
from typing import Any, ClassVar, Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from anomaly_api.detection.contributions import severity_from_score
from anomaly_api.detection.ensemble import AnomalyEnsemble, EnsembleOutput
from anomaly_api.detection.following import (
    FOLLOW_FLOOR,
    FOLLOW_KIND,
    Followed,
    check_follow_memory,
    follow_alpha,
    follow_newest,
    follow_rows,
    follow_start,
)
from anomaly_api.detection.pca_monitor import parallel_analysis
from anomaly_api.detection.scaling import fit_robust_scaling, mad_std
from anomaly_api.detection.voting import confidence_from_score
from anomaly_api.detection.windows import (
    DEFAULT_FEATURES,
    FEATURE_KINDS,
    LAG_KINDS,
    check_window,
    feature_names,
    gap_starts,
    lagged_vectors,
    newest_features,
    segment_rows,
    window_features,
)

DETECTOR_CHOICES: Final[tuple[str, ...]] = (
    "max_z",
    "top4_z",
    "top4_relations",
    "ensemble",
    "ensemble_any",
)
DEFAULT_DETECTOR: Final = "top4_z"
RELATION_KINDS: Final[tuple[str, ...]] = ("residual", "residual_mean")
"""The features of a channel's relation to the others (the ``relations`` statistic)."""
RATIO_QUANTILE: Final = 99.0
"""Each statistic of ``top4_relations`` is divided by this percentile of its training values
(chosen on synthetic seeds 11-20, see docs/time-aware.md)."""
_MIN_SCALE: Final = 1e-12
# Floors of the spread of a standardised feature, in its own units: a feature that never
# moved in training (a channel never flat) must not turn the smallest change into an
# infinite z. One repeated value scores z = 4, two score 8, and so on.
_FLAT_SCALE_FLOOR: Final = 0.125
_RIDGE: Final = 1e-3
# Each feature's spread is then stretched so that 99% of its training |z| fall below
# the normal distribution's 99% point: features with heavy tails do not dominate max |z|.
_TAIL_QUANTILE: Final = 99.0
_NORMAL_TAIL: Final = 2.576
# Each short-window mean and the feature of the newest reading alone that backs it.
GATED_MEANS: Final[tuple[tuple[str, str], ...]] = (
    ("shift", "level"),
    ("residual_mean", "residual"),
    ("lag_residual_mean", "lag_residual"),
)
_REASONS: Final[dict[str, str]] = {
    "level": "reading {size:.1f} sd {side} its median of the last {before} readings",
    "shift": "last {s} readings shifted {size:.1f} sd {side} the earlier window",
    "residual": "off its relation to the other sensors by {value:+.1f} sd",
    "residual_mean": "off its relation to the other sensors by {value:+.1f} sd for {s} readings",
    "lag_residual": "off its relation to the recent readings of every sensor by {value:+.1f} sd",
    "lag_residual_mean": (
        "off its relation to the recent readings of every sensor by {value:+.1f} sd "
        "for {s} readings"
    ),
    FOLLOW_KIND: "reading {size:.1f} sd {side} its level over the last ~{memory} readings",
}
"""``_reason``'s words for the other features (only the one needed is formatted)."""
DEFAULT_MEAN_GATE: Final = 2.0
"""Chosen on synthetic seeds 10-19 (not the evaluated 0-9), see docs/time-aware.md."""
DEFAULT_LAGS: Final = 5
"""Readings of each lagged vector of the dynamic PCA (``lag_residual`` features)."""


def gate_means(
    z: NDArray[np.float64], kinds: tuple[str, ...], n_channels: int, gate: float
) -> NDArray[np.float64]:
    """Cap each short-window mean's ``|z|`` at ``gate`` times the newest reading's ``z``
    along the mean's direction (0 when the newest reading points the other way).

    For every channel and every pair of ``GATED_MEANS`` present in ``kinds``::

        z_mean <- sign(z_mean) * min(|z_mean|, gate * max(sign(z_mean) * z_newest, 0))

    While an event lasts, the newest reading shows it too and the mean keeps the benefit
    of averaging; once it is over, the newest reading is normal again and the mean,
    whose window still holds the event, no longer raises alarms. ``z`` has shape
    (n_rows, n_channels * len(kinds)), channel-major; a new array is returned.
    """
    out = np.array(z, dtype=np.float64, copy=True)
    pairs = [(kinds.index(m), kinds.index(n)) for m, n in GATED_MEANS if m in kinds and n in kinds]
    if not pairs:
        return out
    if len(out) == 1:  # a stream's newest reading: plain floats cost less than NumPy's calls
        out[0] = _gated_row(out[0].tolist(), pairs, len(kinds), gate)
        return out
    view = out.reshape(len(out), n_channels, len(kinds))
    means, newest = (list(columns) for columns in zip(*pairs, strict=True))
    mean = view[:, :, means]  # every pair at once: the same element-wise numbers
    direction = np.sign(mean)
    backing = np.maximum(direction * view[:, :, newest], 0.0)
    view[:, :, means] = direction * np.minimum(np.abs(mean), gate * backing)
    return out


def _gated_row(
    row: list[float], pairs: list[tuple[int, int]], n_kinds: int, gate: float
) -> list[float]:
    """``gate_means`` of one row, in place: the same IEEE operations as NumPy's
    ``sign``, ``maximum`` and ``minimum`` (NaN passed on), one channel at a time."""
    for base in range(0, len(row), n_kinds):
        for mean_column, newest_column in pairs:
            mean = row[base + mean_column]
            if mean > 0.0:
                direction = 1.0
            elif mean < 0.0:
                direction = -1.0
            else:  # zero (either sign) or NaN
                direction = mean if isnan(mean) else 0.0
            backing = direction * row[base + newest_column]
            if not (backing > 0.0 or isnan(backing)):
                backing = 0.0
            size, cap = abs(mean), gate * backing
            row[base + mean_column] = direction * (size if size < cap or isnan(size) else cap)
    return row


class MaxZDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """One member: ``score_samples = -max_j |z_j|`` (or the top-k root sum of squares).

    Anomaly below ``offsets_[0]``. With ``relation_columns`` the member is the larger of
    two calibrated ratios: the top-k root sum over every column, and the root of the two
    largest per-channel relation ``z²``, each over its ``RATIO_QUANTILE`` training
    percentile (``ratio_scales_``). Two channels off their relation by 3-4 sd each stand
    out there, where the top-k threshold over every feature sits above them.

    It exposes the ensemble's interface (``detector_scores``, ``combine``,
    ``set_offsets``, ``offsets_``, ``scales_``, ``min_votes``) so the time-aware model
    and the threshold tuning treat both alike.

    Parameters
    ----------
    contamination : float, default=0.01
        Share of training rows below the initial threshold.
    top_k : int, default=1
    relation_columns : tuple of tuple of int, optional
        Per channel, the columns of its relation features; None for the top-k alone.
    """

    min_votes: ClassVar[int] = 1
    """One member: its own vote decides."""

    def __init__(
        self,
        *,
        contamination: float = 0.01,
        top_k: int = 1,
        relation_columns: tuple[tuple[int, ...], ...] | None = None,
    ) -> None:
        self.contamination = contamination
        self.top_k = top_k
        self.relation_columns = relation_columns

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Ratio scales, then the threshold at the ``contamination`` quantile of the
        training scores."""
        data = np.asarray(X, dtype=np.float64)
        if self.relation_columns is not None:
            statistics = self._statistics(data)
            self.ratio_scales_ = np.maximum(
                np.percentile(statistics, RATIO_QUANTILE, axis=0), _MIN_SCALE
            )
        scores = self.detector_scores(data)
        self.offsets_ = np.percentile(scores, 100.0 * self.contamination, axis=0)
        q75, q25 = np.percentile(scores, [75.0, 25.0], axis=0)
        self.scales_ = np.maximum(q75 - q25, _MIN_SCALE)
        self.n_features_in_ = data.shape[1]
        return self

    def _statistics(self, X: ArrayLike) -> NDArray[np.float64]:
        """The top-k root sum (``top_k`` 1: max ``|z|``) and, with ``relation_columns``,
        the relation statistic, shape (n_samples, 1 or 2); higher = more abnormal."""
        data = np.abs(np.asarray(X, dtype=np.float64))
        if self.top_k <= 1:
            overall: NDArray[np.float64] = np.max(data, axis=1, keepdims=True)
        else:
            k = min(self.top_k, data.shape[1])
            top = np.partition(data, data.shape[1] - k, axis=1)[:, data.shape[1] - k :]
            overall = np.sqrt((top**2).sum(axis=1, keepdims=True))
        columns = self.relation_columns
        if columns is None:
            return overall
        per_channel = np.max(data[:, np.asarray(columns, dtype=np.intp)], axis=2)
        pair = min(2, per_channel.shape[1])
        largest = np.partition(per_channel, per_channel.shape[1] - pair, axis=1)
        relation = np.sqrt(np.sum(largest[:, per_channel.shape[1] - pair :] ** 2, axis=1))
        return np.column_stack([overall[:, 0], relation])

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """``-max |z|`` of each row (``top_k`` > 1: minus the root of the sum of the
        ``top_k`` largest ``z²``; with ``relation_columns``: minus the larger ratio of
        that and the relation statistic to their ``ratio_scales_``), shape (n_samples, 1)."""
        statistics = self._statistics(X)
        if statistics.shape[1] == 1:
            return -statistics
        result: NDArray[np.float64] = -np.max(
            statistics / self.ratio_scales_, axis=1, keepdims=True
        )
        return result

    def set_offsets(self, offsets: ArrayLike) -> Self:
        """Replace the threshold."""
        self.offsets_ = np.asarray(offsets, dtype=np.float64).reshape(1)
        return self

    def combine(self, scores: NDArray[np.float64]) -> EnsembleOutput:
        """Votes, anomaly score (the margin) and confidence, as the ensemble gives them."""
        if not hasattr(self, "offsets_"):  # check_is_fitted's estimator tags cost a row's rule
            raise NotFittedError("this MaxZDetector is not fitted yet; call fit first")
        margins = (self.offsets_ - scores) / self.scales_
        return EnsembleOutput.from_margins(scores, margins, margins[:, 0])

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Detectors saved before ``relation_columns`` existed score the top-k alone."""
        state.setdefault("relation_columns", None)
        super().__setstate__(state)


Detector = MaxZDetector | AnomalyEnsemble


def make_detector(
    name: str, seed: int, relation_columns: tuple[tuple[int, ...], ...] | None = None
) -> Detector:
    """The detector on the window features; the one line to change for another ensemble.

    ``relation_columns`` (per channel, its relation features' columns) is used by
    ``"top4_relations"`` only; without it that detector is ``"top4_z"``.
    """
    if name == "max_z":
        return MaxZDetector()
    if name == "top4_z":
        return MaxZDetector(top_k=4)
    if name == "top4_relations":
        return MaxZDetector(top_k=4, relation_columns=relation_columns)
    if name == "ensemble":
        return AnomalyEnsemble(n_neighbors=20, random_state=seed)
    if name == "ensemble_any":
        return AnomalyEnsemble(n_neighbors=20, random_state=seed, min_votes=1)
    raise ValueError(f"unknown detector {name!r}; choose one of {DETECTOR_CHOICES}")


def detector_member_names(detector: Detector) -> tuple[str, ...]:
    """Names of the detector's members, in the order of its scores."""
    if isinstance(detector, MaxZDetector):
        if detector.relation_columns is not None:
            return (f"top{detector.top_k}_relations",)
        return ("max_z",) if detector.top_k <= 1 else (f"top{detector.top_k}_z",)
    from anomaly_api.detection.ensemble import DETECTOR_NAMES

    return DETECTOR_NAMES


@dataclass(frozen=True)
class TimeAwareOutput:
    """What the time-aware model decides about some readings, one row per reading."""

    anomaly_score: NDArray[np.float64]
    """Higher = more anomalous; positive = anomaly (the detector's margin)."""
    is_anomaly: NDArray[np.bool_]
    severity: NDArray[np.float64]
    """In [0, 1): 0 for readings not flagged, towards 1 far past the threshold."""
    confidence: NDArray[np.float64]
    """``sigmoid(|anomaly_score|)``, in [0.5, 1)."""
    warming_up: NDArray[np.bool_]
    """True where the reading had no full window: scored point-wise."""
    votes: NDArray[np.bool_]
    """Each member's vote (the window detector's members; point-wise ones when warming up)."""
    shares: NDArray[np.float64]
    """Each channel's share of the anomaly, shape (n_readings, n_channels), rows sum to 1."""
    deviations: NDArray[np.float64] = field(repr=False)
    """Each channel's ``|z|`` per window feature kind, shape (n_readings, n_channels,
    len(kinds)); 0 for a warming-up reading (no window features)."""
    channels: list[str] = field(repr=False)
    describe: Callable[[int, int], str] = field(repr=False, compare=False)
    """``describe(row, channel)``: why that channel is abnormal, in words (built on demand)."""
    kinds: tuple[str, ...] = field(repr=False, default=())
    """The window feature kinds of ``deviations``."""
    follow: Followed | None = field(repr=False, compare=False, default=None)
    """The followed state after the last reading (None for a model that does not follow)."""

    def contributions(self, row: int, top_k: int | None = None) -> dict[str, dict[str, Any]]:
        """``{channel: {"share": float, "why": str}}`` of one reading, largest share first."""
        order = np.argsort(-self.shares[row], kind="stable")
        if top_k is not None:
            order = order[:top_k]
        shares = self.shares[row].tolist()
        return {
            self.channels[c]: {"share": shares[c], "why": self.describe(row, c)}
            for c in order.tolist()
        }

    def top_channel(self) -> NDArray[np.intp]:
        """Index of the largest contributor of every reading."""
        result: NDArray[np.intp] = np.argmax(self.shares, axis=1)
        return result


def _as_seconds(timestamps: ArrayLike) -> NDArray[np.float64]:
    values = np.asarray(timestamps)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
    return np.asarray(values, dtype=np.float64)


class TimeAwareModel(BaseEstimator):  # type: ignore[misc]
    """Window features of each reading of a stream, and a detector on them.

    Parameters
    ----------
    window : int, default=60
        Readings in the trailing window (the newest included).
    short : int, default=5
        Readings of the short window of ``shift`` and ``residual_mean``.
    features : tuple of str, default=``DEFAULT_FEATURES``
        Which window features (residual ones are left out for a single channel).
    explained_variance : float, default=0.9
        The PCA keeps the fewest components explaining this share of the variance.
    lags : int, default=5
        Readings of each lagged vector of the dynamic PCA behind the ``lag_residual``
        features (unused without them); its components are chosen by parallel analysis.
    mean_gate : float or None, default=2.0
        A short-window mean (``shift``, ``residual_mean``) counts at most this many
        times the newest reading's own ``z`` in its direction (``gate_means``); None
        keeps the means as they are (the behaviour before).
    detector : {"top4_z", "top4_relations", "max_z", "ensemble", "ensemble_any"}, \
            default="top4_z"
    follow_memory : int, default=0
        0: off. Otherwise one more feature per channel, ``follow`` (``following.py``):
        the newest reading against an exponentially weighted level and spread of the
        stream's readings with this memory, started from the training readings' median
        and mean absolute deviation; its spread is stretched so that 99% of its training
        values fall below the normal distribution's 99% point, as the window features'.
    max_gap_factor : float, default=3.0
        A gap longer than this many median intervals restarts the window.
    random_state : int, default=0

    Attributes
    ----------
    channels_ : list of str
    center_, scale_ : ndarray of shape (n_channels,)
        Robust scaling of the raw readings.
    scale_rule_ : ndarray of shape (n_channels,)
        ``"iqr"``, ``"std"`` or ``"floor"`` (constant in training) per channel.
    components_ : ndarray of shape (n_components, n_channels)
    projector_ : ndarray of shape (n_channels, n_channels) or None
        ``I - V V^T``, the projection onto the PCA residual.
    lag_projector_ : ndarray of shape (n_channels, n_channels * lags) or None
        The newest reading's rows of the dynamic PCA's residual projection, each scaled
        to unit training spread (``windows.lag_residuals``).
    lag_components_ : int
        Components the dynamic PCA keeps (0 without ``lag_residual`` features).
    kinds_ : tuple of str
        The window features in use.
    feature_center_, feature_scale_ : ndarray of shape (n_features,)
    detector_ : MaxZDetector or AnomalyEnsemble
        On the standardised window features.
    pointwise_ : AnomalyEnsemble
        On the scaled reading alone, for readings that are warming up.
    median_interval_ : float
        Median seconds between readings in training (0 when not known).
    follow_start_ : Followed or None
        The training state of the ``follow`` feature (None when ``follow_memory`` is 0).
    follow_floor_ : ndarray of shape (n_channels,)
        The smallest followed deviation per channel (raw units).
    """

    def __init__(
        self,
        *,
        window: int = 60,
        short: int = 5,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        relations: str = "regression",
        explained_variance: float = 0.9,
        lags: int = DEFAULT_LAGS,
        equalise_tails: bool = True,
        mean_gate: float | None = DEFAULT_MEAN_GATE,
        detector: str = DEFAULT_DETECTOR,
        follow_memory: int = 0,
        max_gap_factor: float = 3.0,
        random_state: int = 0,
    ) -> None:
        self.window = window
        self.short = short
        self.features = features
        self.relations = relations
        self.explained_variance = explained_variance
        self.lags = lags
        self.equalise_tails = equalise_tails
        self.mean_gate = mean_gate
        self.detector = detector
        self.follow_memory = follow_memory
        self.max_gap_factor = max_gap_factor
        self.random_state = random_state

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        X: ArrayLike,
        segments: NDArray[np.int64] | None = None,
        fit_rows: NDArray[np.bool_] | None = None,
        *,
        channels: list[str] | None = None,
        median_interval: float = 0.0,
    ) -> Self:
        """Fit scaling, PCA, feature standardisation and detectors.

        ``X`` holds every reading in time order per segment; ``fit_rows`` marks the
        readings (and, for the window detector, the windows ending there) to learn
        normal behaviour from; by default all of them.
        """
        check_window(self.window, self.short, self.lags if self._uses_lags() else 1)
        if self.detector not in DETECTOR_CHOICES:
            raise ValueError(
                f"unknown detector {self.detector!r}; choose one of {DETECTOR_CHOICES}"
            )
        unknown = [k for k in self.features if k not in FEATURE_KINDS]
        if unknown:
            raise ValueError(f"unknown window feature {unknown[0]!r}; known: {FEATURE_KINDS}")
        memory = check_follow_memory(self.follow_memory)
        data = np.asarray(X, dtype=np.float64)
        n_rows, n_channels = data.shape
        mask = np.ones(n_rows, dtype=np.bool_) if fit_rows is None else np.asarray(fit_rows)
        self.channels_ = (
            list(channels) if channels is not None else [f"x{i}" for i in range(n_channels)]
        )
        self.median_interval_ = float(median_interval)
        self.center_, self.scale_, self.scale_rule_ = fit_robust_scaling(data[mask])
        scaled = (data - self.center_) / self.scale_
        kinds = tuple(self.features)
        if n_channels < 2:
            kinds = tuple(k for k in kinds if not k.startswith("residual"))
        self.kinds_ = (*kinds, FOLLOW_KIND) if memory else kinds
        self.follow_start_ = follow_start(data[mask]) if memory else None
        self.follow_floor_ = FOLLOW_FLOOR * self.scale_
        self._fit_relations(scaled[mask])
        self._fit_dynamic_pca(scaled, segments, mask)
        raw, valid = window_features(scaled, segments, **self._window_options())
        raw, _ = self._with_follow(raw, data, segments, None)
        fit_windows = valid & mask
        if int(fit_windows.sum()) <= 20:
            raise ValueError(
                f"only {int(fit_windows.sum())} full windows of normal readings to fit on; "
                "need more than 20 (more data or a shorter window)"
            )
        self._fit_feature_scaling(raw[fit_windows])
        z = self._standardise(raw[fit_windows])
        # The ensemble sees only the columns that move in training (a flat count that is
        # always 0 would get the floored spread of its z-score member and flag any later
        # count alone) and the features of channels constant in training, whose every
        # move is abnormal. The z detectors keep every column.
        floored = np.repeat(self.scale_rule_ == "floor", len(self.kinds_))
        moving = (np.ptp(z, axis=0) > 0) | floored
        self.detector_columns_ = (
            np.flatnonzero(moving)
            if self.detector.startswith("ensemble")
            else np.arange(z.shape[1])
        )
        self.detector_ = make_detector(
            self.detector, self.random_state, self._relation_columns()
        ).fit(z[:, self.detector_columns_])
        self.pointwise_ = AnomalyEnsemble(n_neighbors=20, random_state=self.random_state).fit(
            scaled[mask]
        )
        self.n_features_in_ = n_channels
        return self

    def _relation_columns(self) -> tuple[tuple[int, ...], ...] | None:
        """Per channel, the ``z`` columns of its relation features (None without any)."""
        kinds = [i for i, k in enumerate(self.kinds_) if k in RELATION_KINDS]
        if not kinds:
            return None
        n_kinds = len(self.kinds_)
        return tuple(tuple(c * n_kinds + i for i in kinds) for c in range(len(self.channels_)))

    def _fit_relations(self, scaled: NDArray[np.float64]) -> None:
        n_channels = scaled.shape[1]
        self.components_ = np.zeros((0, n_channels))
        self.projector_: NDArray[np.float64] | None = None
        if not any(k.startswith("residual") for k in self.kinds_):
            return
        centred = scaled - scaled.mean(axis=0)
        if self.relations == "regression":
            # residual of each channel against its linear regression on all the others:
            # r = D^-1 P x with P the (ridge-regularised) precision matrix, D = diag(P)
            cov = np.cov(centred, rowvar=False) + _RIDGE * np.eye(n_channels)
            precision = np.linalg.inv(cov)
            relation = precision / np.diag(precision)[:, None]
        else:
            relation = self._pca_projector(centred)
        # rows rescaled so that residuals come out in training standard deviations
        spread = (centred @ relation.T).std(axis=0)
        self.projector_ = self._detached(relation / np.maximum(spread, _MIN_SCALE)[:, None])

    def _detached(self, projector: NDArray[np.float64], lags: int = 1) -> NDArray[np.float64]:
        """``projector`` with the channels constant in training out of every relation.

        Such a channel has no relation to the others to break: its own residual would be
        itself over a zero spread. Its residuals stay 0 and it weighs in no other
        channel's; its level, flat count and shift carry any move of it.
        """
        constant = self.scale_rule_ == "floor"
        if not constant.any():
            return projector
        detached = projector.copy()
        detached[constant, :] = 0.0
        detached[:, np.repeat(constant, lags)] = 0.0
        return detached

    def _uses_lags(self) -> bool:
        return any(k in LAG_KINDS for k in self.features)

    def _fit_dynamic_pca(
        self,
        scaled: NDArray[np.float64],
        segments: NDArray[np.int64] | None,
        mask: NDArray[np.bool_],
    ) -> None:
        """The dynamic PCA of the lagged vectors whose ``lags`` readings are all fit rows
        (components by parallel analysis, as the point-wise PCA monitor chooses them)."""
        self.lag_projector_: NDArray[np.float64] | None = None
        self.lag_components_ = 0
        if not any(k in LAG_KINDS for k in self.kinds_):
            return
        lags = int(self.lags)
        rows = segment_rows(segments, len(scaled))
        blocks = [
            lagged_vectors(scaled[r], lags)[np.all(_lagged_mask(mask[r], lags), axis=1)]
            for r in rows
            if len(r) >= lags
        ]
        vectors = np.concatenate(blocks) if blocks else np.empty((0, scaled.shape[1] * lags))
        if len(vectors) <= vectors.shape[1]:
            raise ValueError(
                f"only {len(vectors)} lagged vectors of normal readings for a dynamic PCA of "
                f"{vectors.shape[1]} dimensions; need more (more data or fewer lags)"
            )
        centred = vectors - vectors.mean(axis=0)
        k = parallel_analysis(centred, int(self.random_state))
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = vt[:k]
        newest = np.arange(lags - 1, vectors.shape[1], lags)  # lag 0 of every channel
        relation = (np.eye(vectors.shape[1]) - components.T @ components)[newest]
        spread = (centred @ relation.T).std(axis=0)
        self.lag_projector_ = self._detached(
            relation / np.maximum(spread, _MIN_SCALE)[:, None], lags
        )
        self.lag_components_ = k

    def _window_options(self) -> dict[str, Any]:
        """``window_features``' and ``newest_features``' arguments of this model."""
        lag_projector = getattr(self, "lag_projector_", None)  # absent in older models
        return {
            "window": self.window,
            "short": self.short,
            "kinds": self._window_kinds(),
            "residual_projector": self.projector_,
            "lags": int(self.lags) if lag_projector is not None else 1,
            "lag_projector": lag_projector,
        }

    def _pca_projector(self, centred: NDArray[np.float64]) -> NDArray[np.float64]:
        n_channels = centred.shape[1]
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        explained = np.cumsum(singular**2) / max(float(np.sum(singular**2)), _MIN_SCALE)
        k = int(np.searchsorted(explained, self.explained_variance) + 1)
        k = min(max(k, 1), n_channels - 1)
        self.components_ = vt[:k]
        result: NDArray[np.float64] = np.eye(n_channels) - self.components_.T @ self.components_
        return result

    def _fit_feature_scaling(self, raw: NDArray[np.float64]) -> None:
        center = np.median(raw, axis=0)
        scale = mad_std(raw)
        scale = np.where(scale > _MIN_SCALE, scale, raw.std(axis=0))
        flat = np.tile(np.array([k == "flat" for k in self.kinds_]), len(self.channels_))
        scale = np.where(flat, np.maximum(scale, _FLAT_SCALE_FLOOR), scale)
        scale = np.where(scale > _MIN_SCALE, scale, 1.0)
        if self.equalise_tails:
            tail = np.percentile(np.abs(raw - center) / scale, _TAIL_QUANTILE, axis=0)
            scale = np.where(tail > _NORMAL_TAIL, scale * tail / _NORMAL_TAIL, scale)
        if self._follows():  # g is already in sd: centred at 0, only its tail stretched
            followed = np.tile(
                np.array([k == FOLLOW_KIND for k in self.kinds_]), len(self.channels_)
            )
            tail = np.percentile(np.abs(raw[:, followed]), _TAIL_QUANTILE, axis=0)
            center = np.where(followed, 0.0, center)
            scale[followed] = np.maximum(1.0, tail / _NORMAL_TAIL)
        self.feature_center_ = center
        self.feature_scale_ = scale

    def _standardise(self, raw: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = (raw - self.feature_center_) / self.feature_scale_
        # models saved before the gate existed have no mean_gate: they score as before
        gate = getattr(self, "mean_gate", None)
        if gate is not None:
            result = gate_means(result, self.kinds_, len(self.channels_), float(gate))
        return result

    # ----------------------------------------------------------------- features
    @property
    def feature_names_(self) -> list[str]:
        """``"<channel>:<kind>"`` of every window feature, in the detector's column order."""
        return feature_names(self.channels_, self.kinds_)

    @property
    def history_needed(self) -> int:
        """Readings of a stream needed to score its newest one with window features."""
        return int(self.window)

    def scale(self, X: ArrayLike) -> NDArray[np.float64]:
        """Raw readings in robust standard deviations of each channel."""
        check_is_fitted(self)
        result: NDArray[np.float64] = (np.asarray(X, dtype=np.float64) - self.center_) / self.scale_
        return result

    def window_z(
        self,
        X: ArrayLike,
        segments: NDArray[np.int64] | None = None,
        *,
        follow: Followed | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        """Raw window features, standardised ones (``z``) and validity of every row.

        ``follow``: the followed state each segment starts from (the training state when
        None); each segment is followed on its own, as a stream of its own."""
        data = np.asarray(X, dtype=np.float64)
        raw, valid = window_features(self.scale(data), segments, **self._window_options())
        raw, _ = self._with_follow(raw, data, segments, follow)
        return raw, self._standardise(raw), valid

    def _follows(self) -> bool:
        """Whether the model has the ``follow`` feature."""
        return FOLLOW_KIND in self.kinds_

    def _follow_from(self, state: Followed | None, n_channels: int) -> Followed:
        """``state`` checked against the channels, or the training state for None."""
        start: Followed | None = self.follow_start_ if state is None else state
        if start is None:
            raise NotFittedError("this TimeAwareModel has no followed training state")
        start.check(n_channels)
        return start

    def _window_kinds(self) -> tuple[str, ...]:
        """The kinds computed from the window (every kind but ``follow``)."""
        kinds: tuple[str, ...] = self.kinds_
        return kinds[:-1] if kinds and kinds[-1] == FOLLOW_KIND else kinds

    def _with_follow(
        self,
        raw: NDArray[np.float64],
        data: NDArray[np.float64],
        segments: NDArray[np.int64] | None,
        state: Followed | None,
        first: int = 0,
        *,
        learn: bool = True,
    ) -> tuple[NDArray[np.float64], Followed | None]:
        """``raw`` window features with ``g`` of every reading appended to each channel's,
        and the followed state after the last reading. Each segment is followed from
        ``state`` (the training state when None); with ``first``, only the rows from it
        on (one segment; ``g`` is NaN before it). ``learn=False``: the state stays."""
        if not self._follows():
            return raw, None
        start = self._follow_from(state, data.shape[1])
        alpha = follow_alpha(int(self.follow_memory)) if learn else 0.0
        n, n_channels = data.shape
        g = np.full((n, n_channels), np.nan)
        after: Followed | None = start
        if segments is None:
            g[first:], after = follow_rows(data[first:], start, alpha, self.follow_floor_)
        else:
            for rows in segment_rows(segments, n):
                g[rows], after = follow_rows(data[rows], start, alpha, self.follow_floor_)
        joined = np.concatenate([raw.reshape(n, n_channels, -1), g[:, :, None]], axis=2)
        return joined.reshape(n, -1), after

    def detector_scores(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """The window detector's ``score_samples`` of standardised features (valid rows)."""
        columns = self.detector_columns_
        # every column (the z detectors): z itself, not a copy by fancy indexing
        return self.detector_.detector_scores(z if len(columns) == z.shape[1] else z[:, columns])

    # ----------------------------------------------------------------- scoring
    def score_frame(
        self,
        X: ArrayLike,
        segments: NDArray[np.int64] | None = None,
        *,
        follow: Followed | None = None,
    ) -> TimeAwareOutput:
        """Score every reading of a frame (in time order within each segment); each
        segment is followed from ``follow`` (the training state when None)."""
        check_is_fitted(self)
        data = np.asarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected readings of {self.n_features_in_} channels, got shape {data.shape}"
            )
        raw, valid = window_features(self.scale(data), segments, **self._window_options())
        raw, after = self._with_follow(raw, data, segments, follow)
        return self._decide(data, raw, self._standardise(raw), valid, after)

    def score_window(
        self,
        timestamps: ArrayLike,
        values: ArrayLike,
        *,
        last: int | None = 1,
        follow: Followed | None = None,
        learn: bool = True,
    ) -> TimeAwareOutput:
        """Score the newest ``last`` readings (all of them for ``None``) of one stream.

        ``timestamps``: seconds since the epoch (float) or ``datetime64``, strictly
        increasing; ``values``: shape (n_readings, n_channels) in raw units, oldest
        first. A gap longer than ``max_gap_factor`` median intervals restarts the
        window. Readings without ``window - 1`` readings before them (after the last
        gap) are scored point-wise and marked ``warming_up``. Only the last
        ``window - 1 + last`` readings are used; sending more changes nothing. One new
        reading of a full window without a gap (``last=1``) is scored from its features
        alone (``newest_features``), with the same numbers bit for bit.

        A model with the ``follow`` feature follows its level and spread over the
        readings: ``follow`` is the state before the first scored reading (a stream's,
        kept between calls); None starts from the training state at the first reading
        used. Gaps do not restart it. The output's ``follow`` is the state after the
        last reading. ``learn=False`` judges every reading against ``follow`` (the
        training state when None) without moving it.

        Raises ``ValueError`` for a wrong shape, non-finite values or timestamps that
        are not strictly increasing (the caller answers 4xx).
        """
        if not hasattr(self, "detector_"):  # check_is_fitted costs as much as a feature
            raise NotFittedError("this TimeAwareModel is not fitted yet; call fit first")
        data = np.asarray(values, dtype=np.float64)
        seconds = _as_seconds(timestamps)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_ or len(data) == 0:
            raise ValueError(
                f"expected readings of {self.n_features_in_} channels, got shape {data.shape}"
            )
        if seconds.shape != (len(data),):
            raise ValueError(f"expected {len(data)} timestamps, got shape {seconds.shape}")
        if not (np.isfinite(data).all() and np.isfinite(seconds).all()):
            raise ValueError("readings and timestamps must be finite numbers")
        steps = seconds[1:] - seconds[:-1]  # np.diff's numbers without its wrapper
        if (steps <= 0).any():
            row = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise ValueError(f"reading {row}: timestamp not after the previous reading's")
        n_out = len(data) if last is None else min(int(last), len(data))
        keep = min(len(data), self.window - 1 + n_out)
        if n_out == 1 and keep == self.window and not self._gap_in(steps[len(steps) - keep + 1 :]):
            return self._score_newest(data[-keep:], follow, learn)
        data, seconds = data[-keep:], seconds[-keep:]
        segments = (
            gap_starts(seconds, self.median_interval_, self.max_gap_factor)
            if self.median_interval_ > 0
            else None
        )
        raw, valid = window_features(self.scale(data), segments, **self._window_options())
        first = 0 if follow is None else keep - n_out
        raw, after = self._with_follow(raw, data, None, follow, first, learn=learn)
        rows = slice(keep - n_out, keep)
        z = self._standardise(raw)
        return self._decide(data[rows], raw[rows], z[rows], valid[rows], after)

    def _gap_in(self, steps: NDArray[np.float64]) -> bool:
        """Whether ``gap_starts`` would start a new segment at one of these steps."""
        if self.median_interval_ <= 0:
            return False
        return bool((steps > self.max_gap_factor * self.median_interval_).any())

    def _score_newest(
        self, data: NDArray[np.float64], follow: Followed | None = None, learn: bool = True
    ) -> TimeAwareOutput:
        """``score_window(..., last=1)`` of one full window without a gap: the same numbers,
        bit for bit, from the newest reading's features alone (``newest_features``)."""
        raw = newest_features((data - self.center_) / self.scale_, **self._window_options())
        after = None
        if self._follows():
            state = self._follow_from(follow, data.shape[1])
            alpha = follow_alpha(int(self.follow_memory)) if learn else 0.0
            if follow is None:  # the training state at the window's first reading
                _, state = follow_rows(data[:-1], state, alpha, self.follow_floor_)
            g, after = follow_newest(data[-1].tolist(), state, alpha, self.follow_floor_.tolist())
            n_channels = data.shape[1]
            raw = np.concatenate(
                [raw.reshape(1, n_channels, -1), np.array(g).reshape(1, n_channels, 1)], axis=2
            ).reshape(1, -1)
        z = self._standardise(raw)
        detector = self.detector_
        if not (
            isinstance(detector, MaxZDetector) and np.isfinite(raw).all() and np.isfinite(z).all()
        ):
            return self._decide(data[-1:], raw, z, np.ones(1, dtype=np.bool_), after)
        # ``_decide`` and ``_explain`` of this one valid row, with plain floats where they
        # are the same IEEE operations: the detector's ``combine`` (its margin, severity)
        # and the shares' ``where`` (the total is positive or not)
        scores = self.detector_scores(z)
        margin = (float(detector.offsets_[0]) - float(scores[0, 0])) / float(detector.scales_[0])
        anomaly_score = np.array([margin])
        positive = margin if margin > 0.0 else 0.0
        severity = 1.0 if isinf(positive) else positive / (1.0 + positive)
        n_channels = len(self.channels_)
        z3 = z.reshape(1, n_channels, len(self.kinds_))
        windowed = np.maximum(z3**2 - 1.0, 0.0).sum(axis=2)
        total = float(windowed.sum(axis=1)[0])
        shares = windowed / total if total > 0 else np.full((1, n_channels), 1.0 / n_channels)
        flagged = margin > 0.0
        valid = np.ones(1, dtype=np.bool_)
        return TimeAwareOutput(
            anomaly_score=anomaly_score,
            is_anomaly=np.array([flagged]),
            severity=np.array([severity]),
            confidence=confidence_from_score(anomaly_score),
            warming_up=~valid,
            votes=np.array([[flagged]]),
            shares=shares,
            deviations=np.abs(z3),
            channels=self.channels_,
            describe=self._describer(valid, windowed, raw.reshape(z3.shape), z3),
            kinds=tuple(self.kinds_),
            follow=after,
        )

    def _decide(
        self,
        data: NDArray[np.float64],
        raw: NDArray[np.float64],
        z: NDArray[np.float64],
        valid: NDArray[np.bool_],
        follow: Followed | None = None,
    ) -> TimeAwareOutput:
        n = len(data)
        if valid.all():  # no warming-up reading: the detector's own output, as it is
            out = self.detector_.combine(self.detector_scores(z))
            shares, describe, deviations = self._explain(data, raw, z, valid)
            return TimeAwareOutput(
                anomaly_score=out.anomaly_score,
                is_anomaly=out.is_anomaly,
                severity=out.severity,
                confidence=out.confidence,
                warming_up=~valid,
                votes=out.votes,
                shares=shares,
                deviations=deviations,
                channels=self.channels_,
                describe=describe,
                kinds=tuple(self.kinds_),
                follow=follow,
            )
        n_members = len(detector_member_names(self.detector_))
        score = np.zeros(n)
        votes = np.zeros((n, max(n_members, 3)), dtype=np.bool_)
        if valid.any():
            out = self.detector_.combine(self.detector_scores(z[valid]))
            score[valid] = out.anomaly_score
            votes[valid, :n_members] = out.votes
        if (~valid).any():
            scorer = getattr(self, "_pointwise_scorer", None) or self.pointwise_
            scaled = np.ascontiguousarray(self.scale(data[~valid]))
            out = self.pointwise_.combine(scorer.detector_scores(scaled))
            score[~valid] = out.anomaly_score
            votes[~valid, :3] = out.votes
        shares, describe, deviations = self._explain(data, raw, z, valid)
        return TimeAwareOutput(
            anomaly_score=score,
            is_anomaly=score > 0,
            severity=severity_from_score(score),
            confidence=confidence_from_score(score),
            warming_up=~valid,
            votes=votes[:, : max(n_members, 3 if (~valid).any() else n_members)],
            shares=shares,
            deviations=deviations,
            channels=self.channels_,
            describe=describe,
            kinds=tuple(self.kinds_),
            follow=follow,
        )

    # ----------------------------------------------------------------- explaining
    def set_pointwise_scorer(self, scorer: Any) -> None:
        """Score warming-up readings with a faster, exact scorer of ``pointwise_``.

        For example ``compile_scorer(model.pointwise_, "numpy")`` from
        ``anomaly_api.detection.fast``; it is not saved with the model.
        """
        self._pointwise_scorer = scorer

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the (process-local) fast scorer."""
        state = dict(self.__dict__)
        state.pop("_pointwise_scorer", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models saved before ``lags`` existed have no lagged features: 1 lag, as they
        score (so that ``get_params`` and ``repr`` work on them)."""
        state.setdefault("lags", 1)
        state.setdefault("follow_memory", 0)
        super().__setstate__(state)

    def _explain(
        self,
        data: NDArray[np.float64],
        raw: NDArray[np.float64],
        z: NDArray[np.float64],
        valid: NDArray[np.bool_],
    ) -> tuple[NDArray[np.float64], Callable[[int, int], str], NDArray[np.float64]]:
        """Shares, reasons and deviations (``TimeAwareOutput``) of scored readings."""
        n, n_channels, n_kinds = len(data), len(self.channels_), len(self.kinds_)
        z3 = _finite(z.reshape(n, n_channels, n_kinds))
        raw3 = _finite(raw.reshape(n, n_channels, n_kinds))
        windowed = np.maximum(z3**2 - 1.0, 0.0).sum(axis=2)
        if valid.all():  # no warming-up row: the same numbers as the ``where`` below
            point = windowed
            energy = windowed
        else:
            point = self.scale(data)
            # warming-up rows: the reading's own robust z per channel
            energy = np.where(valid[:, None], windowed, np.maximum(point**2 - 1.0, 0.0))
        total = energy.sum(axis=1, keepdims=True)
        shares = np.where(total > 0, energy / np.where(total > 0, total, 1.0), 1.0 / n_channels)
        deviations = np.where(valid[:, None, None], np.abs(z3), 0.0)
        return shares, self._describer(valid, point, raw3, z3), deviations

    def _describer(
        self,
        valid: NDArray[np.bool_],
        point: NDArray[np.float64],
        raw3: NDArray[np.float64],
        z3: NDArray[np.float64],
    ) -> Callable[[int, int], str]:
        """``describe(row, channel)`` of ``TimeAwareOutput``: a valid row's feature of the
        largest ``|z|`` in words, a warming-up row's own robust z (``point``)."""
        top_kind = np.argmax(np.abs(z3), axis=2)

        def describe(row: int, channel: int) -> str:
            if not valid[row]:
                value = float(point[row, channel])
                side = "above" if value >= 0 else "below"
                return f"reading {abs(value):.1f} sd {side} its training median (warming up)"
            k = int(top_kind[row, channel])
            return self._reason(
                channel, self.kinds_[k], float(raw3[row, channel, k]), float(z3[row, channel, k])
            )

        return describe

    def _reason(self, channel: int, kind: str, value: float, z: float) -> str:
        """The largest feature of a channel, in words."""
        side = "above" if value >= 0 else "below"
        w, s = self.window, self.short
        if kind == "spread":
            usual = self.feature_center_[channel * len(self.kinds_) + self.kinds_.index(kind)]
            ratio = float(np.exp(value - usual))
            if ratio < 0.05:
                return f"no variability over the last {w} readings"
            return f"variability {ratio:.2f}x its usual over the last {w} readings"
        if kind == "flat":
            count = round(value) + 1
            if count >= w:
                return f"flat for {w} readings or more"
            return f"flat for {count} readings" if count > 1 else "not flat"
        return _REASONS[kind].format(
            size=abs(value), value=value, side=side, before=w - 1, s=s, memory=self.follow_memory
        )


def _finite(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.nan_to_num(values)``; ``values`` themselves when every one is finite (the
    newest reading of a full window), which costs less than the conversion."""
    if np.isfinite(values).all():
        return values
    result: NDArray[np.float64] = np.nan_to_num(values)
    return result


def _lagged_mask(mask: NDArray[np.bool_], lags: int) -> NDArray[np.bool_]:
    """Per lagged vector of one segment, whether each of its readings is a fit row."""
    return np.lib.stride_tricks.sliding_window_view(mask, lags)
