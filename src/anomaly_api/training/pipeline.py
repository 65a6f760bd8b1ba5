"""The training pipeline: split, fit on normal rows, tune thresholds, evaluate, save.

With labels: a stratified, seeded 60/20/20 split. The ensemble is fitted on the
training rows that are *not* labelled anomalous, each detector's threshold is tuned on
the validation rows (max F1, or with a target false-positive rate the order-statistic
bound of ``training.calibration`` on the normal validation rows), and the test rows
(never seen before) give the reported metrics. Without labels: the ensemble is fitted on
every row and the thresholds come from its ``contamination``; with a target
false-positive rate it is fitted on the first 80% of the rows (file order taken as time
order) and calibrated on the rest. There are no metrics without labels. Every model
states the false-alarm rate it expects on later normal data (``metrics.false_alarm_rate``).

``train_and_save`` also keeps the drift reference and each detector's scores beside the
model (``training.references``), so drift can be tracked and thresholds moved later.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import build_manifest, data_fingerprint, save_artifact
from anomaly_api.data.errors import DataError
from anomaly_api.data.loading import Dataset, synthetic_dataset
from anomaly_api.detection import DETECTOR_NAMES, AnomalyEnsemble
from anomaly_api.training.calibration import calibrate, counted_statement
from anomaly_api.training.evaluation import evaluate_model
from anomaly_api.training.references import build_references, reference_attachments
from anomaly_api.training.split import Split, stratified_split
from anomaly_api.training.thresholds import tune_thresholds

Progress = Callable[[str], None]
N_NEIGHBORS = 20
CALIBRATION_SHARE = 0.2
"""Unlabelled with a target false-positive rate: the last rows, kept out of the fit."""


@dataclass(frozen=True)
class TrainedModel:
    """A fitted, tuned ensemble with what it was fitted on and how it scored."""

    model: AnomalyEnsemble
    X_fit: NDArray[np.float64]
    metrics: dict[str, Any]
    split: Split | None = None
    """The train/validation/test rows; None when trained without labels."""


@dataclass(frozen=True)
class TrainingResult:
    """A saved model version."""

    version: str
    path: Path
    trained: TrainedModel
    seconds: float


def _quiet(_: str) -> None:
    """Default progress sink: say nothing."""


def threshold_objective(target_fpr: float | None) -> str:
    """How the thresholds were chosen, as recorded in the metrics."""
    return "max-f1" if target_fpr is None else f"target-fpr={target_fpr:g}"


@dataclass(frozen=True)
class EnsembleConfig:
    """Which members vote and how many must agree (``anomaly-api train --detectors``)."""

    detectors: tuple[str, ...] = DETECTOR_NAMES
    min_votes: int = 2
    contamination: float = 0.05
    """Share of training rows each member flags (its threshold without labels)."""


def new_ensemble(seed: int, config: EnsembleConfig) -> AnomalyEnsemble:
    """The (unfitted) ensemble the pipeline trains for ``config``."""
    return AnomalyEnsemble(
        detectors=config.detectors,
        min_votes=config.min_votes,
        contamination=config.contamination,
        n_neighbors=N_NEIGHBORS,
        random_state=seed,
    )


def _fit(X_fit: NDArray[np.float64], seed: int, config: EnsembleConfig) -> AnomalyEnsemble:
    if X_fit.shape[0] <= N_NEIGHBORS:
        raise DataError(
            f"only {X_fit.shape[0]} normal rows to fit on; need more than {N_NEIGHBORS}"
        )
    return new_ensemble(seed, config).fit(X_fit)


def constant_features(
    feature_names: Sequence[str], scale_rule: NDArray[np.str_], progress: Progress
) -> list[str]:
    """The features constant in the fitted rows (their spread is floored, see
    ``detection.scaling.spread_floor``), each named in a warning line."""
    names = [name for name, rule in zip(feature_names, scale_rule, strict=True) if rule == "floor"]
    for name in names:
        progress(f"warning: feature {name!r} is constant in training: any change will be flagged")
    return names


def _counted(
    model: AnomalyEnsemble, X: NDArray[np.float64], target: float | None, where: str
) -> dict[str, Any]:
    """The false-alarm statement of ``model``'s thresholds counted on normal rows ``X``."""
    return counted_statement(model, model.detector_scores(X), target, where)


def _fit_and_calibrate(
    dataset: Dataset,
    seed: int,
    target_fpr: float,
    progress: Progress,
    config: EnsembleConfig,
) -> TrainedModel:
    """Unlabelled rows in time order: fit on the first 80%, calibrate ``target_fpr`` on the
    rest (``training.calibration``), which the model never saw."""
    n_fit = round(dataset.n_rows * (1.0 - CALIBRATION_SHARE))
    X_fit, X_cal = dataset.X[:n_fit], dataset.X[n_fit:]
    progress(f"no labels: fitting on the first {n_fit} rows, calibrating on the last {len(X_cal)}")
    model = _fit(X_fit, seed, config)
    calibrated = calibrate(
        model,
        model.detector_scores(X_cal),
        target_fpr,
        where=f"rows of the last {CALIBRATION_SHARE:.0%} (never fitted on)",
    )
    model.set_offsets(calibrated.offsets)
    metrics: dict[str, Any] = {
        "threshold_objective": f"calibrated on unseen last {CALIBRATION_SHARE:.0%}: "
        f"fpr={target_fpr:g}",
        "false_alarm_rate": calibrated.statement,
        "split": {"kind": "chronological", "fit": n_fit, "calibration": len(X_cal)},
        "note": "no label column: thresholds calibrated on unseen rows, not evaluated",
        "test": None,
    }
    return TrainedModel(model=model, X_fit=X_fit, metrics=metrics)


def fit_and_evaluate(
    dataset: Dataset,
    *,
    seed: int = 42,
    target_fpr: float | None = None,
    progress: Progress = _quiet,
    config: EnsembleConfig = EnsembleConfig(),
) -> TrainedModel:
    """Fit, tune and evaluate an ensemble on ``dataset`` (see the module docstring).

    Features constant in the fitted rows are named in a warning line and listed under
    ``constant_features`` in the metrics (absent when there are none).
    """
    trained = _fit_and_evaluate(dataset, seed, target_fpr, progress, config)
    constant = constant_features(dataset.feature_names, trained.model.scale_rule_, progress)
    if constant:
        trained.metrics["constant_features"] = constant
    return trained


def _fit_and_evaluate(
    dataset: Dataset,
    seed: int,
    target_fpr: float | None,
    progress: Progress,
    config: EnsembleConfig,
) -> TrainedModel:
    if dataset.y is None and target_fpr is not None:
        return _fit_and_calibrate(dataset, seed, target_fpr, progress, config)
    if dataset.y is None:
        progress(f"no labels: fitting on all {dataset.n_rows} rows")
        model = _fit(dataset.X, seed, config)
        note = "no label column: thresholds from contamination, not evaluated"
        metrics: dict[str, Any] = {
            "threshold_objective": f"contamination={model.contamination:g}",
            "false_alarm_rate": _counted(model, dataset.X, None, "fitted rows (in-sample)"),
            "note": note,
            "test": None,
        }
        return TrainedModel(model=model, X_fit=dataset.X, metrics=metrics)
    y = dataset.y
    split = stratified_split(y, seed=seed)
    fit_rows = split.train[y[split.train] == 0]
    progress(
        f"split (seed {seed}): {len(split.train)} train ({len(fit_rows)} normal rows fitted), "
        f"{len(split.validation)} validation, {len(split.test)} test"
    )
    X_fit = dataset.X[fit_rows]
    model = _fit(X_fit, seed, config)
    progress(f"fitted {model.__class__.__name__} on {len(fit_rows)} rows")
    validation_scores = model.detector_scores(dataset.X[split.validation])
    normal_scores = validation_scores[y[split.validation] == 0]
    if target_fpr is None:
        model.set_offsets(tune_thresholds(validation_scores, y[split.validation]))
        false_alarms = counted_statement(
            model,
            normal_scores,
            None,
            "normal validation rows (max F1 chosen on them)",
        )
    else:
        calibrated = calibrate(
            model,
            normal_scores,
            target_fpr,
            where="normal validation rows",
        )
        model.set_offsets(calibrated.offsets)
        false_alarms = calibrated.statement
    progress(f"tuned thresholds on validation ({threshold_objective(target_fpr)})")
    kinds = dataset.kinds[split.test] if dataset.kinds is not None else None
    report = evaluate_model(model, dataset.X[split.test], y[split.test], kinds)
    progress(f"evaluated on {len(split.test)} held-out test rows")
    metrics = {
        "threshold_objective": threshold_objective(target_fpr),
        "false_alarm_rate": false_alarms,
        "split": {
            "seed": seed,
            "train": len(split.train),
            "fit": len(fit_rows),
            "validation": len(split.validation),
            "test": len(split.test),
        },
        "test": report,
    }
    return TrainedModel(model=model, X_fit=X_fit, metrics=metrics, split=split)


def default_version(dataset: Dataset, seed: int, target_fpr: float | None, now: datetime) -> str:
    """``<UTC timestamp>-<8 hex digits of the data, seed and objective>``."""
    digest = hashlib.sha256(
        f"{data_fingerprint(dataset.feature_names, dataset.X)}|{seed}|"
        f"{threshold_objective(target_fpr)}".encode()
    ).hexdigest()
    return f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}"


def _unused(artifacts_dir: Path, version: str) -> str:
    candidate, n = version, 1
    while (artifacts_dir / candidate).exists():
        n += 1
        candidate = f"{version}-{n}"
    return candidate


def train_and_save(
    dataset: Dataset,
    artifacts_dir: Path,
    *,
    seed: int = 42,
    target_fpr: float | None = None,
    version: str | None = None,
    progress: Progress = _quiet,
    config: EnsembleConfig = EnsembleConfig(),
    make_latest: bool = True,
) -> TrainingResult:
    """Train on ``dataset`` and save a new version that ``LATEST`` points at (unless not
    ``make_latest``: a named model's aliases decide, see ``anomaly_api.registry``)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    trained = fit_and_evaluate(
        dataset, seed=seed, target_fpr=target_fpr, progress=progress, config=config
    )
    name = version or _unused(artifacts_dir, default_version(dataset, seed, target_fpr, now))
    manifest = build_manifest(
        trained.model,
        dataset.feature_names,
        trained.X_fit,
        version=name,
        created_at=now,
        source=dataset.source,
        n_rows=dataset.n_rows,
        metrics=trained.metrics,
    )
    validation = None
    if trained.split is not None and dataset.y is not None:
        rows = trained.split.validation
        validation = (dataset.X[rows], dataset.y[rows].astype(np.int64))
    references = build_references(trained.model, dataset.feature_names, trained.X_fit, validation)
    path = save_artifact(
        trained.model,
        manifest,
        artifacts_dir,
        make_latest=make_latest,
        attachments=reference_attachments(references),
    )
    progress(f"saved model version {name} to {path}")
    return TrainingResult(
        version=name, path=path, trained=trained, seconds=time.perf_counter() - started
    )


def train_default_model(artifacts_dir: Path, *, seed: int = 42) -> Path:
    """Train on the embedded synthetic sensor data; return the new version's directory."""
    return train_and_save(synthetic_dataset(seed=seed), artifacts_dir, seed=seed).path
