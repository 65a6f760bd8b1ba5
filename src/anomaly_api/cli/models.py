"""``anomaly-api models``: list saved model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anomaly_api.cli.common import resolve_artifacts_dir, user_errors


def models(
    *,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
) -> None:
    """List model versions, oldest first; `*` marks the current one (LATEST)."""
    from anomaly_api.artifacts import latest_version, list_versions

    directory = resolve_artifacts_dir(artifacts_dir)
    with user_errors():
        manifests = list_versions(directory)
        current = latest_version(directory)
    if not manifests:
        typer.echo(f"no model versions in {directory}; run `anomaly-api train`")
        return
    typer.echo(f"  {'version':<34}{'created (UTC)':<22}{'features':>9}{'test F1':>9}  source")
    for manifest in manifests:
        test = (manifest.metrics or {}).get("test")
        # a point-wise report has F1 per detector and the ensemble's; a time-aware one, its own
        report = (test.get("detectors") or {}).get("ensemble", test) if test else None
        f1 = f"{report['f1']:.3f}" if report else "-"
        mark = "*" if manifest.version == current else " "
        created = f"{manifest.created_at:%Y-%m-%d %H:%M:%S}"
        typer.echo(
            f"{mark} {manifest.version:<34}{created:<22}{len(manifest.feature_names):>9}"
            f"{f1:>9}  {manifest.training_data.source}"
        )
