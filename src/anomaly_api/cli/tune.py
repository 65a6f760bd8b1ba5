"""``anomaly-api tune``: move a model version's thresholds without retraining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anomaly_api.cli.common import fail, resolve_artifacts_dir, user_errors

if TYPE_CHECKING:
    from anomaly_api.training.tuning import Objective


def parse_objective(
    target_fpr: float | None,
    contamination: float | None,
    target_recall: float | None,
    thresholds: str | None,
) -> Objective:
    """Exactly one of the four options as an ``Objective``, or one ``error:`` line."""
    from anomaly_api.training.tuning import (
        Contamination,
        Explicit,
        TargetFPR,
        TargetRecall,
        TuningError,
        parse_thresholds,
    )

    given = [
        flag
        for flag, value in (
            ("--target-fpr", target_fpr),
            ("--contamination", contamination),
            ("--target-recall", target_recall),
            ("--thresholds", thresholds),
        )
        if value is not None
    ]
    if len(given) != 1:
        fail(
            "give exactly one of --target-fpr, --contamination, --target-recall, --thresholds"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if target_fpr is not None:
        return TargetFPR(target_fpr)
    if contamination is not None:
        return Contamination(contamination)
    if target_recall is not None:
        return TargetRecall(target_recall)
    assert thresholds is not None
    try:
        return Explicit(parse_thresholds(thresholds))
    except TuningError as exc:
        fail(f"--thresholds: {exc}")


def tune(
    *,
    version: Annotated[
        str | None, typer.Option(help="Version to retune (default: the one LATEST names).")
    ] = None,
    target_fpr: Annotated[
        float | None,
        typer.Option(help="Each detector flags at most this share of normal rows, in (0, 1)."),
    ] = None,
    contamination: Annotated[
        float | None,
        typer.Option(help="Each detector flags this share of the training rows, in (0, 0.5]."),
    ] = None,
    target_recall: Annotated[
        float | None,
        typer.Option(help="Each detector flags at least this share of labelled anomalies."),
    ] = None,
    thresholds: Annotated[
        str | None,
        typer.Option(help="Explicit thresholds, name=value,... (others keep theirs)."),
    ] = None,
    new_version: Annotated[
        str | None, typer.Option(help="Name of the new version (default: <version>-t<hash>).")
    ] = None,
    no_latest: Annotated[
        bool, typer.Option("--no-latest", help="Do not point LATEST at the new version.")
    ] = False,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
) -> None:
    """Write a new verified version with moved thresholds and point LATEST at it.

    Prints the new version's tuning record (JSON) on stdout.
    """
    from anomaly_api.training.revision import tune_version
    from anomaly_api.training.tuning import TuningError

    objective = parse_objective(target_fpr, contamination, target_recall, thresholds)
    directory = resolve_artifacts_dir(artifacts_dir)
    with user_errors():
        try:
            result = tune_version(
                directory, version, objective, new_version=new_version, make_latest=not no_latest
            )
        except TuningError as exc:
            fail(str(exc))
    typer.echo(
        json.dumps(
            {
                "version": result.version,
                "parent_version": result.parent_version,
                "objective": result.objective,
                "thresholds_before": result.before,
                "thresholds_after": result.after,
                "expected": result.expected,
                "latest": not no_latest,
            },
            indent=2,
        )
    )
