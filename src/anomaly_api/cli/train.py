"""``anomaly-api train``: fit, tune and evaluate the ensemble, then save a model version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anomaly_api.cli.common import fail, progress, resolve_artifacts_dir, user_errors

if TYPE_CHECKING:
    from anomaly_api.training.pipeline import EnsembleConfig


def parse_features(features: str | None) -> list[str] | None:
    """``"a,b,c"`` -> ``["a", "b", "c"]``; None keeps every numeric column."""
    if features is None:
        return None
    names = [name.strip() for name in features.split(",") if name.strip()]
    if not names:
        fail("--features is empty; give column names separated by commas")
    return names


def parse_ensemble(
    detectors: str | None, min_votes: int | None, contamination: float | None
) -> EnsembleConfig:
    """The ``--detectors`` / ``--min-votes`` / ``--contamination`` choice, or one ``error:``."""
    from anomaly_api.detection import validate_members
    from anomaly_api.training.pipeline import EnsembleConfig

    default = EnsembleConfig()
    names = default.detectors
    if detectors is not None:
        names = tuple(name.strip() for name in detectors.split(",") if name.strip())
    votes = default.min_votes if min_votes is None else min_votes
    if detectors is not None and min_votes is None:
        votes = min(votes, len(names))
    try:
        validate_members(names, votes)
    except ValueError as exc:
        fail(f"{exc} (--detectors / --min-votes)")
    share = default.contamination if contamination is None else contamination
    if not 0.0 < share < 0.5:
        fail(f"--contamination must be between 0 and 0.5 (exclusive), got {share:g}")
    return EnsembleConfig(detectors=names, min_votes=votes, contamination=share)


@dataclass(frozen=True)
class _Target:
    """Where a trained version goes: the artifact directory, or a named model in it."""

    root: Path
    model: str | None
    auto_promote: bool

    @classmethod
    def of(
        cls, artifacts_dir: Path | None, model: str | None, auto_promote: bool | None
    ) -> _Target:
        from anomaly_api.config import get_settings
        from anomaly_api.registry import validate_model_name

        if model is None and auto_promote is not None:
            fail("--auto-promote needs --model")
        if model is not None:
            try:
                validate_model_name(model)
            except ValueError as exc:
                fail(f"{exc} (--model)")
        promote = bool(auto_promote)
        if model is not None and auto_promote is None:
            promote = get_settings().auto_promote
        return cls(resolve_artifacts_dir(artifacts_dir), model, promote)

    @property
    def directory(self) -> Path:
        """The directory the version is saved in."""
        from anomaly_api.registry import model_dir

        return self.root if self.model is None else model_dir(self.root, self.model)

    def register(self, version: str) -> dict[str, object]:
        """Register ``version`` with the named model (nothing without one); says what
        the aliases did."""
        if self.model is None:
            return {}
        from anomaly_api.registry import register_version

        decision = register_version(self.root, self.model, version, auto_promote=self.auto_promote)
        where = "production and candidate" if decision["promoted"] else "candidate"
        progress(f"model {self.model}: {version} is now {where} ({decision['why']})")
        return {"model": self.model, "promotion": decision}


def train(
    *,
    data: Annotated[
        Path | None,
        typer.Option(help="CSV/Parquet file to train on; the synthetic sensor data if omitted."),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature columns (default: all numeric).")
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(help="0/1 label column (default: is_anomaly when the file has it)."),
    ] = None,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, the model and the data.")] = 42,
    version: Annotated[
        str | None, typer.Option(help="Version name (default: UTC time + data fingerprint).")
    ] = None,
    target_fpr: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Tune thresholds to this false-positive rate, not max F1."
        ),
    ] = None,
    detectors: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated members: isolation_forest, local_outlier_factor, zscore, pca "
            "(default: the first three)."
        ),
    ] = None,
    min_votes: Annotated[
        int | None,
        typer.Option(help="Members that must agree (default: 2, or 1 for a single member)."),
    ] = None,
    contamination: Annotated[
        float | None,
        typer.Option(help="Share of training rows each member flags without labels (0.05)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Register the version as a version of this named model (its `candidate`; "
            "`production` too when it has none, or by --auto-promote).",
        ),
    ] = None,
    auto_promote: Annotated[
        bool | None,
        typer.Option(
            help="With --model: promote when the held-out F1 is not worse than production's "
            "(default: ANOMALY_AUTO_PROMOTE).",
        ),
    ] = None,
    # --- time-aware models: --window switches to the windowed model ---------
    window: Annotated[
        int | None,
        typer.Option(
            min=4,
            help="Train a time-aware model on trailing windows of this many readings per stream.",
        ),
    ] = None,
    timestamp_column: Annotated[
        str | None,
        typer.Option(help="Timestamp column of --data (needed with --window and --data)."),
    ] = None,
    stream_column: Annotated[
        str | None, typer.Option(help="Stream id column of --data (default: one stream).")
    ] = None,
    max_gap_factor: Annotated[
        float,
        typer.Option(help="A gap above this many median intervals restarts the window."),
    ] = 3.0,
) -> None:
    """Train the ensemble, evaluate it on a held-out split and save a new model version."""
    target = _Target.of(artifacts_dir, model, auto_promote)
    if window is not None:
        _train_time_aware(
            data=data,
            features=features,
            label_column=label_column,
            target=target,
            seed=seed,
            version=version,
            target_fpr=target_fpr,
            as_json=as_json,
            window=window,
            timestamp_column=timestamp_column,
            stream_column=stream_column,
            max_gap_factor=max_gap_factor,
        )
        return
    if timestamp_column is not None or stream_column is not None:
        fail("--timestamp-column and --stream-column need --window")
    from anomaly_api.data.loading import load_dataset, synthetic_dataset
    from anomaly_api.training.calibration import describe, stated
    from anomaly_api.training.evaluation import format_report
    from anomaly_api.training.pipeline import train_and_save

    if target_fpr is not None and not 0.0 < target_fpr < 1.0:
        fail(f"--target-fpr must be between 0 and 1 (exclusive), got {target_fpr:g}")
    config = parse_ensemble(detectors, min_votes, contamination)
    with user_errors():
        if data is None:
            if features is not None or label_column is not None:
                fail("--features and --label-column need --data")
            progress(f"generating synthetic sensor data (seed {seed})")
            dataset = synthetic_dataset(seed=seed)
        else:
            progress(f"loading {data}")
            dataset = load_dataset(
                data, features=parse_features(features), label_column=label_column
            )
        labels = "unlabelled" if dataset.y is None else f"{int(dataset.y.sum())} labelled anomalies"
        progress(f"{dataset.n_rows} rows, {len(dataset.feature_names)} features, {labels}")
        result = train_and_save(
            dataset,
            target.directory,
            seed=seed,
            target_fpr=target_fpr,
            version=version,
            progress=progress,
            config=config,
            make_latest=target.model is None,
        )
        registered = target.register(result.version)
    metrics = result.trained.metrics
    if as_json:
        answer = {"version": result.version, "metrics": metrics}
        typer.echo(json.dumps(answer | registered, indent=2))
        return
    typer.echo(f"model version {result.version} saved in {result.path} ({result.seconds:.1f} s)")
    typer.echo(f"features: {', '.join(dataset.feature_names)}")
    members = ", ".join(result.trained.model.detectors_)
    typer.echo(f"members: {members} (anomaly when >= {config.min_votes} agree)")
    typer.echo(f"thresholds: {metrics['threshold_objective']}")
    typer.echo(f"false alarms on later normal data: {describe(stated(metrics))}")
    if metrics["test"] is None:
        typer.echo(f"not evaluated: {metrics['note']}")
    else:
        typer.echo("held-out test split:")
        typer.echo(format_report(metrics["test"]))


def _train_time_aware(
    *,
    data: Path | None,
    features: str | None,
    label_column: str | None,
    target: _Target,
    seed: int,
    version: str | None,
    target_fpr: float | None,
    as_json: bool,
    window: int,
    timestamp_column: str | None,
    stream_column: str | None,
    max_gap_factor: float,
) -> None:
    """``train --window N``: a time-aware model (see docs/time-aware.md)."""
    from anomaly_api.data.timeseries import load_timeseries, synthetic_timeseries
    from anomaly_api.training.calibration import describe, stated
    from anomaly_api.training.time_aware import (
        TimeAwareSettings,
        format_time_aware_report,
        train_time_aware_and_save,
    )

    if target_fpr is not None and not 0.0 < target_fpr < 1.0:
        fail(f"--target-fpr must be between 0 and 1 (exclusive), got {target_fpr:g}")
    if max_gap_factor <= 1.0:
        fail(f"--max-gap-factor must be above 1, got {max_gap_factor:g}")
    short = max(1, min(5, window - 2))
    settings = TimeAwareSettings(window=window, short=short, target_fpr=target_fpr, seed=seed)
    with user_errors():
        if data is None:
            if features is not None or label_column is not None or timestamp_column is not None:
                fail("--features, --label-column and --timestamp-column need --data")
            progress(f"generating synthetic sensor data (seed {seed}, one 5-minute stream)")
            ts = synthetic_timeseries(seed=seed, max_gap_factor=max_gap_factor)
        else:
            if timestamp_column is None:
                fail("--window with --data needs --timestamp-column")
            progress(f"loading {data}")
            ts = load_timeseries(
                data,
                timestamp_column=timestamp_column,
                stream_column=stream_column,
                max_gap_factor=max_gap_factor,
                features=parse_features(features),
                label_column=label_column,
            )
        progress(
            f"{ts.data.n_rows} readings, {len(ts.data.feature_names)} channels, "
            f"{ts.n_segments} segment(s), median interval {ts.median_interval:g} s"
        )
        if ts.merged_repeats or ts.skipped_back or ts.irregular:
            progress(
                f"merged {ts.merged_repeats} repeated timestamp(s), skipped "
                f"{ts.skipped_back} reading(s) whose clock stepped back; gap factor "
                f"{ts.max_gap_factor:g}" + (" (raised: irregular sampling)" if ts.irregular else "")
            )
        result = train_time_aware_and_save(
            ts,
            target.directory,
            settings,
            version=version,
            progress=progress,
            make_latest=target.model is None,
        )
        registered = target.register(result.version)
    metrics = result.trained.metrics
    if as_json:
        answer = {"version": result.version, "metrics": metrics}
        typer.echo(json.dumps(answer | registered, indent=2))
        return
    model = result.trained.model
    typer.echo(f"model version {result.version} saved in {result.path} ({result.seconds:.1f} s)")
    typer.echo(f"time-aware: window {model.window}, features {', '.join(model.kinds_)}")
    typer.echo(f"channels: {', '.join(ts.data.feature_names)}")
    typer.echo(f"thresholds: {metrics['threshold_objective']}")
    typer.echo(f"false alarms on later normal data: {describe(stated(metrics))}")
    if metrics["test"] is None:
        typer.echo(f"not evaluated: {metrics['note']}")
    else:
        typer.echo("last 20% of the time span (held out):")
        typer.echo(format_time_aware_report(metrics["test"]))
