"""Training of a time-aware model: chronological split, fit, tune, evaluate.

Window features of neighbouring readings share readings, so a random split would leak;
the split is chronological instead (by timestamp, over all streams): the first 60% of
the time span fits the model, the next 20% tunes the thresholds, the last 20% tests.

With labels, the fitted windows are those of the first part whose short window is
normal, and thresholds are tuned on the validation part: max F1, but never looser than
``normal_floor`` (4.5) robust sd below the median score of the validation part's normal
windows (``normal_floor=None``: plain max F1) nor than the order-statistic bound of
``training.calibration`` for 1% on those windows; or that bound for a target
false-positive rate. Without labels, the model is fitted on the first 80% and the
thresholds are the bound for 1% (or the target) on the last 20%: percentiles of the very
rows a model was fitted on are optimistic (see ``../shared/datasets/tep/SOURCE.md``), so
the calibration rows are never fitted on. When gaps leave no reading of that last 20% with
a full window, the split counts the readings that have one instead (``full_window_parts``):
the last 20% of them calibrate, the readings before them fit (a warning says so). The
warm-up ensemble is held to the same bound (never looser). ``metrics.false_alarm_rate``
states the rate expected on later normal data.

The saved version keeps its references (``training.references``), as a point-wise one
does: the raw channels of the fitted readings (drift) and the window detector's scores
that thresholds can move along later (``anomaly-api tune``). With labels: the fitted
windows, and the validation windows with their labels. Without: the fitted windows and
the calibration windows (the unseen last 20% the thresholds were set on).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, precision_score, recall_score

from anomaly_api.artifacts import (
    FORMAT_VERSION,
    ArtifactManifest,
    DetectorInfo,
    TimeAwareInfo,
    TrainingDataInfo,
    data_fingerprint,
    feature_stats,
    library_versions,
    save_artifact,
    validate_version_name,
)
from anomaly_api.data.anomalies import NORMAL_KIND
from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.detection.time_aware import (
    DEFAULT_DETECTOR,
    DEFAULT_MEAN_GATE,
    Detector,
    TimeAwareModel,
    TimeAwareOutput,
    detector_member_names,
)
from anomaly_api.detection.windows import DEFAULT_FEATURES
from anomaly_api.monitoring.reference import build_drift_reference
from anomaly_api.training.calibration import calibrate, counted_statement
from anomaly_api.training.pipeline import constant_features
from anomaly_api.training.references import (
    ModelReferences,
    reference_attachments,
    score_reference,
    tunable_detector,
)
from anomaly_api.training.thresholds import (
    best_f1_threshold,
    normal_floor_threshold,
    target_fpr_threshold,
    tune_thresholds,
)

Progress = Callable[[str], None]
FIT_SHARE: Final = 0.6
VALIDATION_SHARE: Final = 0.2
UNLABELLED_CALIBRATION_FPR: Final = 0.01
LABELLED_BOUND_FPR: Final = 0.01
"""Labelled max-F1 thresholds are never looser than the bound of this false-alarm rate."""
CALIBRATION_PART: Final = "held-out readings of the last 20% of the time span"
WARM_UP_PART: Final = "held-out normal readings (warm-up ensemble)"
VALIDATION_NORMALS: Final = "normal windows of the validation part"
DEFAULT_NORMAL_FLOOR: Final = 4.5
"""Labelled max-F1 thresholds stay at least this many robust sd below the median score
of the validation part's normal windows (chosen in docs/time-aware.md)."""


def _quiet(_: str) -> None:
    """Default progress sink."""


@dataclass(frozen=True)
class TimeAwareSettings:
    """What ``anomaly-api train --window`` chooses."""

    window: int = 60
    short: int = 5
    features: tuple[str, ...] = DEFAULT_FEATURES
    detector: str = DEFAULT_DETECTOR
    relations: str = "regression"
    equalise_tails: bool = True
    mean_gate: float | None = DEFAULT_MEAN_GATE
    target_fpr: float | None = None
    normal_floor: float | None = DEFAULT_NORMAL_FLOOR
    """Max-F1 thresholds never looser than this many robust sd below the validation
    normals' median score; None for plain max F1 (before). Unused with ``target_fpr``."""
    follow_memory: int = 0
    """``TimeAwareModel.follow_memory``: the ``follow`` feature's memory in readings, 0 for
    none (off by default: measured through the user's paths in docs/time-aware.md)."""
    seed: int = 42


@dataclass(frozen=True)
class TrainedTimeAware:
    """A fitted, tuned time-aware model, its parts and how it scored."""

    model: TimeAwareModel
    metrics: dict[str, Any]
    parts: NDArray[np.int64]
    """0 = fit, 1 = validation, 2 = test, per row."""
    fit_rows: NDArray[np.bool_]
    references: ModelReferences
    """Drift reference of the raw channels and the window detector's kept scores."""


def chronological_parts(timestamps: NDArray[np.float64], labelled: bool) -> NDArray[np.int64]:
    """Part of each row by time: 0 fit, 1 validation (tuning/calibration), 2 test."""
    start, end = float(timestamps.min()), float(timestamps.max())
    position = (timestamps - start) / max(end - start, 1e-9)
    parts = np.where(
        position < FIT_SHARE, 0, np.where(position < FIT_SHARE + VALIDATION_SHARE, 1, 2)
    )
    if not labelled:
        parts = np.where(position < FIT_SHARE + VALIDATION_SHARE, 0, 1)
    return parts.astype(np.int64)


def full_windows(segments: NDArray[np.int64], window: int) -> NDArray[np.bool_]:
    """Whether each row has a full window: ``window - 1`` readings before it in its segment
    (rows in time order within each segment)."""
    order = np.argsort(segments, kind="stable")
    ordered = segments[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    full = np.zeros(len(segments), dtype=np.bool_)
    full[order] = rank >= window - 1
    return full


def full_window_parts(
    timestamps: NDArray[np.float64], full: NDArray[np.bool_]
) -> NDArray[np.int64] | None:
    """The unlabelled split counted in readings with a full window (``full``): 1 from the
    first of the last 20% of them on (by time), 0 before; None when too few have one to
    give both parts some.

    For data whose gaps leave no full window in the last 20% of the time span: a gap
    restarts the window, so what calibration needs is full windows, not time."""
    times = np.sort(timestamps[full])
    n_calibration = int(len(times) * (1.0 - FIT_SHARE - VALIDATION_SHARE))
    if n_calibration < 1 or n_calibration == len(times):
        return None
    cut = times[len(times) - n_calibration]
    return np.where(timestamps >= cut, 1, 0).astype(np.int64)


def split_parts(
    ts: TimeSeriesDataset, labelled: bool, window: int, progress: Progress
) -> tuple[NDArray[np.int64], str]:
    """``chronological_parts``, or without labels ``full_window_parts`` when gaps leave the
    calibration part no full window (said in a warning); with the split's kind."""
    parts = chronological_parts(ts.timestamps, labelled)
    if labelled:
        return parts, "chronological"
    full = full_windows(ts.segments, window)
    by_windows = None if full[parts == 1].any() else full_window_parts(ts.timestamps, full)
    if by_windows is None:
        return parts, "chronological"
    progress(
        "warning: gaps leave no full window in the last 20% of the time span: "
        "the last 20% of the readings with a full window calibrate instead"
    )
    return by_windows, "chronological, counted in full windows"


def window_contains(
    flags: NDArray[np.bool_], segments: NDArray[np.int64], window: int
) -> NDArray[np.bool_]:
    """True where any of the row's trailing ``window`` readings (same segment) is flagged."""
    out = np.zeros(len(flags), dtype=np.bool_)
    order = np.argsort(segments, kind="stable")
    bounds = np.flatnonzero(np.diff(segments[order])) + 1
    for rows in np.split(order, bounds):
        counts = np.cumsum(np.concatenate([[0], flags[rows].astype(np.int64)]))
        idx = np.arange(1, len(rows) + 1)
        out[rows] = (counts[idx] - counts[np.maximum(idx - window, 0)]) > 0
    return out


def new_time_aware_model(settings: TimeAwareSettings, **options: Any) -> TimeAwareModel:
    """An unfitted model with the settings' window, features, detector, mean gate and
    seed; other ``TimeAwareModel`` parameters from ``options`` (their defaults otherwise)."""
    return TimeAwareModel(
        window=settings.window,
        short=settings.short,
        features=settings.features,
        detector=settings.detector,
        mean_gate=settings.mean_gate,
        follow_memory=settings.follow_memory,
        random_state=settings.seed,
        **options,
    )


def normal_fpr_offsets(scores: NDArray[np.float64], fpr: float) -> NDArray[np.float64]:
    """Per detector column of ``scores`` (normal readings only), the threshold that
    flags ``fpr`` of them."""
    zeros = np.zeros(len(scores), dtype=np.int64)
    return np.array([target_fpr_threshold(col, zeros, fpr) for col in scores.T])


def labelled_objective(settings: TimeAwareSettings) -> str:
    """How labelled training chose the window detector's threshold (the manifest's
    ``metrics.threshold_objective``)."""
    if settings.target_fpr is not None:
        return f"target-fpr={settings.target_fpr:g}"
    if settings.normal_floor is None:
        return "max-f1"
    return f"max-f1, normal-floor={settings.normal_floor:g}"


def floor_report(
    names: tuple[str, ...], scores: NDArray[np.float64], y: NDArray[np.int64], k: float
) -> dict[str, Any]:
    """Per detector: the max-F1 threshold, the normal floor and whether the floor was
    kept (the stricter one; the manifest's ``metrics.threshold_selection``)."""
    detectors: dict[str, Any] = {}
    for name, col in zip(names, scores.T, strict=True):
        max_f1 = best_f1_threshold(col, y)
        floor = normal_floor_threshold(col, y, k)
        detectors[name] = {"max_f1": max_f1, "normal_floor": floor, "floor_kept": floor < max_f1}
    return {"normal_floor_sd": k, "detectors": detectors}


def tune_labelled(
    model: TimeAwareModel,
    scores: NDArray[np.float64],
    y: NDArray[np.int64],
    settings: TimeAwareSettings,
) -> dict[str, Any] | None:
    """Set the window detector's thresholds from labelled validation ``scores``; the
    ``floor_report`` when the normal floor took part."""
    model.detector_.set_offsets(
        tune_thresholds(
            scores, y, target_fpr=settings.target_fpr, normal_floor=settings.normal_floor
        )
    )
    if settings.target_fpr is not None or settings.normal_floor is None:
        return None
    names = detector_member_names(model.detector_)
    return floor_report(names, scores, y, settings.normal_floor)


def calibrate_detector(
    detector: Detector,
    normal_scores: NDArray[np.float64],
    target: float,
    where: str,
    *,
    stricter_only: bool = False,
) -> dict[str, Any]:
    """Move ``detector``'s thresholds to the order-statistic bound of ``target`` on these
    held-out normal scores (``stricter_only``: only where that is stricter); the statement."""
    result = calibrate(detector, normal_scores, target, where=where)
    offsets = result.offsets
    if stricter_only:
        offsets = np.minimum(offsets, detector.offsets_)
    detector.set_offsets(offsets)
    return result.statement


def bound_labelled(
    model: TimeAwareModel, normal_scores: NDArray[np.float64], settings: TimeAwareSettings
) -> dict[str, Any]:
    """Keep labelled thresholds no looser than the order-statistic bound on the validation
    part's normal windows (``target_fpr``, else ``LABELLED_BOUND_FPR``); the statement."""
    target = settings.target_fpr or LABELLED_BOUND_FPR
    detector = model.detector_
    if settings.target_fpr is not None:
        return calibrate_detector(detector, normal_scores, target, VALIDATION_NORMALS)
    bound = calibrate(detector, normal_scores, target).offsets
    detector.set_offsets(np.minimum(detector.offsets_, bound))
    return counted_statement(
        detector,
        normal_scores,
        target,
        f"{VALIDATION_NORMALS} (max F1 and normal floor, never looser than the "
        f"order-statistic bound of {target:g})",
    )


def tune_pointwise(
    model: TimeAwareModel,
    ts: TimeSeriesDataset,
    parts: NDArray[np.int64],
    normal: NDArray[np.bool_],
    settings: TimeAwareSettings,
) -> None:
    """The warm-up ensemble's thresholds: tuned on the labelled validation part when it
    holds anomalies, and never looser than the bound on its ``normal`` readings, so that
    warming-up readings are held to the same false-alarm rate as full windows."""
    X, y = ts.data.X, ts.data.y
    rows = parts == 1
    if y is not None and 0 < int(y[rows].sum()) < int(rows.sum()):
        scores = model.pointwise_.detector_scores(model.scale(X[rows]))
        model.pointwise_.set_offsets(
            tune_thresholds(scores, y[rows], target_fpr=settings.target_fpr)
        )
    if normal.any():
        calibrate_detector(
            model.pointwise_,
            model.pointwise_.detector_scores(model.scale(X[normal])),
            settings.target_fpr or UNLABELLED_CALIBRATION_FPR,
            WARM_UP_PART,
            stricter_only=True,
        )


def fit_time_aware(
    ts: TimeSeriesDataset,
    settings: TimeAwareSettings = TimeAwareSettings(),
    *,
    progress: Progress = _quiet,
) -> TrainedTimeAware:
    """Fit, tune and (with labels) evaluate a time-aware model (see the module docstring)."""
    data = ts.data
    y = data.y
    labelled = y is not None
    parts, split_kind = split_parts(ts, labelled, settings.window, progress)
    anomalous = y.astype(np.bool_) if y is not None else np.zeros(data.n_rows, dtype=np.bool_)
    # Median-based window features shrug off a few anomalous readings far back in the
    # window, and normal readings after an event see it in their window too: only rows
    # whose short window holds a labelled anomaly are kept out of the fit.
    dirty = window_contains(anomalous, ts.segments, settings.short)
    fit_rows = (parts == 0) & ~dirty
    model = new_time_aware_model(
        settings,
        relations=settings.relations,
        equalise_tails=settings.equalise_tails,
        max_gap_factor=ts.max_gap_factor,
    )
    try:
        model.fit(
            data.X,
            ts.segments,
            fit_rows,
            channels=data.feature_names,
            median_interval=ts.median_interval,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    progress(
        f"fitted window={settings.window} model ({settings.detector}) on "
        f"{int(fit_rows.sum())} readings of the first {FIT_SHARE:.0%} of the time span"
    )
    constant = constant_features(data.feature_names, model.scale_rule_, progress)
    _, z, valid = model.window_z(data.X, ts.segments)
    tune_rows = (parts == 1) & valid
    point_rows = (parts == 1) & ~anomalous
    det_scores = model.detector_scores(z[tune_rows])
    if y is not None:
        if int(y[tune_rows].sum()) == 0 or int((y[tune_rows] == 0).sum()) == 0:
            raise DataError(
                "the validation part (60-80% of the time span) needs both labelled anomalies "
                "and normal readings with a full window; drop the label column to calibrate "
                "thresholds on unlabelled data instead"
            )
        selection = tune_labelled(model, det_scores, y[tune_rows], settings)
        objective = labelled_objective(settings)
        false_alarms = bound_labelled(model, det_scores[y[tune_rows] == 0], settings)
    else:
        selection = None
        fpr = settings.target_fpr or UNLABELLED_CALIBRATION_FPR
        if not tune_rows.any():
            raise DataError(
                "no reading of the last 20% of the time span has a full window of "
                f"{settings.window} readings to calibrate the threshold on (gaps restart the "
                "window); give more data, a shorter --window or a larger --max-gap-factor"
            )
        false_alarms = calibrate_detector(model.detector_, det_scores, fpr, CALIBRATION_PART)
        objective = f"calibrated on unseen last 20%: fpr={fpr:g}"
    tune_pointwise(model, ts, parts, point_rows, settings)
    progress(f"thresholds: {objective}")
    names = tunable_detector(model).names
    fitted_scores = model.detector_scores(z[fit_rows & valid])
    if y is not None:
        kept = score_reference(names, fitted_scores, (det_scores, y[tune_rows]))
    else:  # and the calibration windows the thresholds were set on
        kept = score_reference(names, fitted_scores, calibration_scores=det_scores)
    references = ModelReferences(
        drift=build_drift_reference(data.X[fit_rows], list(data.feature_names)), scores=kept
    )
    metrics: dict[str, Any] = {
        "follow_memory": int(model.follow_memory),
        "threshold_objective": objective,
        "false_alarm_rate": false_alarms,
        **({"threshold_selection": selection} if selection is not None else {}),
        "input": ts.input_report(),
        "split": {
            "kind": split_kind,
            "fit": int(fit_rows.sum()),
            "validation": int((parts == 1).sum()),
            "test": int((parts == 2).sum()),
        },
        "test": None,
        **({"constant_features": constant} if constant else {}),
    }
    if y is not None:
        test = parts == 2
        out = model.score_frame(data.X[test], ts.segments[test])
        kinds = data.kinds[test] if data.kinds is not None else None
        metrics["test"] = evaluate_stream(out, y[test], kinds, ts.segments[test])
        progress(f"evaluated on the last {int(test.sum())} readings")
    else:
        metrics["note"] = "no label column: thresholds calibrated on unseen data, not evaluated"
    return TrainedTimeAware(
        model=model, metrics=metrics, parts=parts, fit_rows=fit_rows, references=references
    )


def event_delays(
    flagged: NDArray[np.bool_],
    y: NDArray[np.int64],
    kinds: NDArray[np.str_] | None,
    segments: NDArray[np.int64] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per kind: events, share of events detected, median/mean readings until first alarm."""
    labels = kinds if kinds is not None else np.where(y == 1, "anomaly", NORMAL_KIND)
    seg = segments if segments is not None else np.zeros(len(y), dtype=np.int64)
    change = np.concatenate([[True], (labels[1:] != labels[:-1]) | (seg[1:] != seg[:-1])])
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], len(y))
    result: dict[str, dict[str, Any]] = {}
    for kind in sorted(set(labels[y == 1].tolist())):
        delays: list[int] = []
        missed = 0
        for a, b in zip(starts, stops, strict=True):
            if labels[a] != kind:
                continue
            hits = np.flatnonzero(flagged[a:b])
            if len(hits):
                delays.append(int(hits[0]))
            else:
                missed += 1
        events = len(delays) + missed
        result[str(kind)] = {
            "events": events,
            "detected": len(delays) / events if events else 0.0,
            "median_delay": float(np.median(delays)) if delays else None,
            "mean_delay": float(np.mean(delays)) if delays else None,
        }
    return result


def evaluate_stream(
    out: TimeAwareOutput,
    y: NDArray[np.int64],
    kinds: NDArray[np.str_] | None,
    segments: NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Row-wise precision/recall/F1/FPR, recall per kind and detection delay per kind."""
    flagged = out.is_anomaly
    normal = y == 0
    report: dict[str, Any] = {
        "n_samples": len(y),
        "n_anomalies": int(y.sum()),
        "precision": float(precision_score(y, flagged, zero_division=0.0)),
        "recall": float(recall_score(y, flagged, zero_division=0.0)),
        "f1": float(f1_score(y, flagged, zero_division=0.0)),
        "fpr": float(flagged[normal].mean()) if normal.any() else 0.0,
        "warming_up": int(out.warming_up.sum()),
    }
    if kinds is not None:
        report["per_kind_recall"] = {
            str(kind): float(flagged[kinds == kind].mean())
            for kind in sorted(set(kinds[y == 1].tolist()))
        }
    report["delay"] = event_delays(flagged, y, kinds, segments)
    return report


SCORE_DEFINITION_TIME_AWARE: Final = "time-aware-window-z-margin/v1"


@dataclass(frozen=True)
class TimeAwareTrainingResult:
    """A saved time-aware model version."""

    version: str
    path: Path
    trained: TrainedTimeAware
    seconds: float


def build_time_aware_manifest(
    trained: TrainedTimeAware,
    ts: TimeSeriesDataset,
    *,
    version: str,
    created_at: datetime,
) -> ArtifactManifest:
    """Describe a fitted time-aware model; ``model_sha256`` is filled in on saving."""
    model = trained.model
    X_fit = ts.data.X[trained.fit_rows]
    stats = feature_stats(list(ts.data.feature_names), X_fit)
    detector = model.detector_
    members = detector_member_names(detector)
    detectors = [
        DetectorInfo(name=name, threshold=float(offset), scale=float(scale))
        for name, offset, scale in zip(members, detector.offsets_, detector.scales_, strict=True)
    ]
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()}
    return ArtifactManifest(
        format_version=FORMAT_VERSION,
        version=validate_version_name(version),
        created_at=created_at,
        feature_names=list(ts.data.feature_names),
        feature_stats=stats,
        detectors=detectors,
        min_votes=detector.min_votes,
        vote_rule=(
            f"anomaly when >= {detector.min_votes} of {len(members)} detectors agree on the "
            f"window features of the last {model.window} readings"
        ),
        score_definition=SCORE_DEFINITION_TIME_AWARE,
        params=params,
        training_data=TrainingDataInfo(
            source=ts.data.source,
            fingerprint=data_fingerprint(list(ts.data.feature_names), ts.data.X),
            n_rows=ts.data.n_rows,
            n_fit_rows=int(trained.fit_rows.sum()),
        ),
        metrics=trained.metrics,
        library_versions=library_versions(),
        time_aware=TimeAwareInfo(
            window=model.window,
            short_window=model.short,
            features=list(model.kinds_),
            window_feature_names=model.feature_names_,
            detector=model.detector,
            relations=model.relations,
            median_interval_seconds=model.median_interval_,
            max_gap_factor=model.max_gap_factor,
            history_readings=model.history_needed,
            follow_memory=int(model.follow_memory),
            timestamp_column=ts.timestamp_column,
            stream_column=ts.stream_column,
        ),
    )


def train_time_aware_and_save(
    ts: TimeSeriesDataset,
    artifacts_dir: Path,
    settings: TimeAwareSettings = TimeAwareSettings(),
    *,
    version: str | None = None,
    progress: Progress = _quiet,
    make_latest: bool = True,
) -> TimeAwareTrainingResult:
    """Train a time-aware model on ``ts`` and save a new version (``LATEST`` points at it if
    ``make_latest``), with its references as verified attachments."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    trained = fit_time_aware(ts, settings, progress=progress)
    if version is None:
        digest = hashlib.sha256(
            f"{data_fingerprint(ts.data.feature_names, ts.data.X)}|{settings}".encode()
        ).hexdigest()
        base = f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        name, n = base, 1
        while (artifacts_dir / name).exists():
            n += 1
            name = f"{base}-{n}"
    else:
        name = version
    manifest = build_time_aware_manifest(trained, ts, version=name, created_at=now)
    path = save_artifact(
        trained.model,
        manifest,
        artifacts_dir,
        make_latest=make_latest,
        attachments=reference_attachments(trained.references),
    )
    progress(f"saved time-aware model version {name} to {path}")
    return TimeAwareTrainingResult(
        version=name, path=path, trained=trained, seconds=time.perf_counter() - started
    )


def format_time_aware_report(report: dict[str, Any]) -> str:
    """A plain-text summary of ``evaluate_stream``'s report."""
    lines = [
        f"{report['n_samples']} readings, {report['n_anomalies']} anomalies",
        f"precision {report['precision']:.3f}  recall {report['recall']:.3f}  "
        f"f1 {report['f1']:.3f}  fpr {report['fpr']:.4f}",
    ]
    per_kind = report.get("per_kind_recall") or {}
    if per_kind or report.get("delay"):
        lines += ["", f"{'kind':<22}{'recall':>8}{'events':>8}{'found':>8}{'delay':>8}"]
        for kind, delay in report["delay"].items():
            recall = per_kind.get(kind, float("nan"))
            mean_delay = delay["mean_delay"]
            shown = f"{mean_delay:>8.1f}" if mean_delay is not None else f"{'-':>8}"
            lines.append(
                f"{kind:<22}{recall:>8.3f}{delay['events']:>8}{delay['detected']:>8.2f}{shown}"
            )
    return "\n".join(lines)
