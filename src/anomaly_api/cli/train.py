"""``anomaly-api train``: fit, tune and evaluate the ensemble, then save a model version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anomaly_api.cli.common import fail, progress, resolve_artifacts_dir, user_errors

if TYPE_CHECKING:
    from anomaly_api.training.pipeline import TrainingResult
    from anomaly_api.training.request import TrainingRequest
    from anomaly_api.training.time_aware import TimeAwareTrainingResult


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
            help="Save a version of this named model and alias it `candidate`, `production` "
            "too when it has none or by --auto-promote (default: the single model of the "
            "artifact directory, which LATEST moves to)."
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
    window_detector: Annotated[
        str | None,
        typer.Option(
            help="With --window: the window detector (default top4_z; top4_relations is the "
            "opt-in one of docs/time-aware.md)."
        ),
    ] = None,
    follow_memory: Annotated[
        int | None,
        typer.Option(
            help="With --window: memory in readings of the level and spread each reading is "
            "also judged against (the follow feature; 500 is the measured one); default 0, none."
        ),
    ] = None,
) -> None:
    """Train the ensemble, evaluate it on a held-out split and save a new model version."""
    from anomaly_api.training.calibration import describe, stated
    from anomaly_api.training.evaluation import format_report
    from anomaly_api.training.request import (
        RequestError,
        TrainingRequest,
        check_request,
        parse_names,
        run_training,
    )
    from anomaly_api.training.time_aware import format_time_aware_report

    request = TrainingRequest(
        features=parse_names(features),
        label_column=label_column,
        seed=seed,
        version=version,
        target_fpr=target_fpr,
        detectors=parse_names(detectors),
        min_votes=min_votes,
        contamination=contamination,
        window=window,
        timestamp_column=timestamp_column,
        stream_column=stream_column,
        max_gap_factor=max_gap_factor,
        window_detector=window_detector,
        follow_memory=follow_memory,
    )
    try:
        check_request(request, has_data=data is not None)
    except RequestError as exc:
        fail(str(exc))
    if model is None and auto_promote is not None:
        fail("--auto-promote needs --model")
    directory = resolve_artifacts_dir(artifacts_dir)
    named: dict[str, object] = {}
    with user_errors():
        if model is None:
            result = run_training(request, data, directory, progress=progress)
        else:
            result, named = _train_named(request, data, directory, model, auto_promote)
    metrics = result.trained.metrics
    if as_json:
        answer = {"version": result.version, **named, "metrics": metrics}
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"model version {result.version} saved in {result.path} ({result.seconds:.1f} s)")
    _describe(result)
    typer.echo(f"thresholds: {metrics['threshold_objective']}")
    typer.echo(f"false alarms on later normal data: {describe(stated(metrics))}")
    if metrics["test"] is None:
        typer.echo(f"not evaluated: {metrics['note']}")
    elif request.window is None:
        typer.echo("held-out test split:")
        typer.echo(format_report(metrics["test"]))
    else:
        typer.echo("last 20% of the time span (held out):")
        typer.echo(format_time_aware_report(metrics["test"]))


def _train_named(
    request: TrainingRequest,
    data: Path | None,
    artifacts_dir: Path,
    name: str,
    auto_promote: bool | None,
) -> tuple[TrainingResult | TimeAwareTrainingResult, dict[str, object]]:
    """``train --model NAME``: a new version of that model, aliased ``candidate`` (and
    ``production`` by the registry's rule); the model and the promotion decision."""
    from anomaly_api.config import get_settings
    from anomaly_api.registry import model_dir, register_version, validate_model_name
    from anomaly_api.training.request import run_training

    try:
        directory = model_dir(artifacts_dir, validate_model_name(name))
    except ValueError as exc:
        fail(f"{exc} (--model)")
    promote = get_settings().auto_promote if auto_promote is None else auto_promote
    result = run_training(request, data, directory, progress=progress, make_latest=False)
    decision = register_version(artifacts_dir, name, result.version, auto_promote=promote)
    where = "production and candidate" if decision["promoted"] else "candidate"
    progress(f"model {name!r}: version {result.version} is its {where} ({decision['why']})")
    return result, {"model": name, "promotion": decision}


def _describe(result: TrainingResult | TimeAwareTrainingResult) -> None:
    """The lines that differ between a point-wise and a time-aware version."""
    from anomaly_api.artifacts import read_manifest
    from anomaly_api.training.time_aware import TimeAwareTrainingResult

    names = ", ".join(read_manifest(result.path.parent, result.version).feature_names)
    if isinstance(result, TimeAwareTrainingResult):
        model = result.trained.model
        typer.echo(
            f"time-aware: window {model.window}, features {', '.join(model.kinds_)}, "
            f"detector {model.detector}, follow memory {model.follow_memory or 'off'}"
        )
        typer.echo(f"channels: {names}")
        return
    ensemble = result.trained.model
    typer.echo(f"features: {names}")
    members = ", ".join(ensemble.detectors_)
    typer.echo(f"members: {members} (anomaly when >= {ensemble.min_votes} agree)")
