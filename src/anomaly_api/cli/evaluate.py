"""``anomaly-api evaluate``: metrics of a saved model version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from anomaly_api.cli.common import fail, resolve_artifacts_dir, user_errors


def evaluate(
    *,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: LATEST).")] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Labelled CSV/Parquet to score; the stored test metrics if omitted."),
    ] = None,
    label_column: Annotated[str, typer.Option(help="0/1 label column of --data.")] = "is_anomaly",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Evaluate a model version on labelled data, or show its held-out test metrics."""
    from anomaly_api.artifacts import load_artifact
    from anomaly_api.config import get_settings
    from anomaly_api.data.loading import load_dataset
    from anomaly_api.training.evaluation import evaluate_model, format_report

    directory = resolve_artifacts_dir(artifacts_dir)
    with user_errors():
        artifact = load_artifact(
            directory, version, on_version_mismatch=get_settings().on_version_mismatch
        )
        manifest = artifact.manifest
        if data is None:
            report = (manifest.metrics or {}).get("test")
            source = f"held-out test split of {manifest.training_data.source}"
            if report is None:
                fail(f"model {manifest.version!r} has no stored metrics; pass labelled --data")
        else:
            dataset = load_dataset(data, features=manifest.feature_names, label_column=label_column)
            if dataset.y is None:  # pragma: no cover - a named label column is required
                fail(f"{data} has no label column {label_column!r}")
            report = evaluate_model(artifact.model, dataset.X, dataset.y, dataset.kinds)
            source = f"all rows of {data}"
    if as_json:
        typer.echo(json.dumps({"version": manifest.version, "source": source, **report}, indent=2))
        return
    typer.echo(f"model {manifest.version} on {source}:")
    typer.echo(format_report(report))
