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
    *,
    feedback: Path | None = None,
    max_shift: float | None = None,
) -> Objective:
    """Exactly one of the five options as an ``Objective``, or one ``error:`` line."""
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
            ("--feedback", feedback),
        )
        if value is not None
    ]
    if len(given) != 1:
        fail(
            "give exactly one of --target-fpr, --contamination, --target-recall, --thresholds, "
            "--feedback" + (f" (got {', '.join(given)})" if given else "")
        )
    if max_shift is not None and feedback is None:
        fail("--max-shift goes with --feedback")
    if feedback is not None:
        return feedback_objective(feedback, max_shift)
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


def feedback_objective(path: Path, max_shift: float | None) -> Objective:
    """The margin shift the labelled events of ``path`` (JSON Lines) ask for, or one
    ``error:`` line."""
    from anomaly_api.training.feedback import (
        DEFAULT_MAX_SHIFT,
        labelled_peaks,
        read_jsonl,
        shift_for,
    )
    from anomaly_api.training.tuning import TuningError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--feedback: cannot read {path}: {exc}")
    try:
        peaks = labelled_peaks(read_jsonl(text))
        return shift_for(peaks, DEFAULT_MAX_SHIFT if max_shift is None else max_shift)
    except TuningError as exc:
        fail(f"--feedback {path}: {exc}")


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
    feedback: Annotated[
        Path | None,
        typer.Option(
            help="Labelled events (JSON Lines): lower every anomaly score by the smallest "
            "shift that silences the false alarms below the lowest confirmed peak."
        ),
    ] = None,
    max_shift: Annotated[
        float | None,
        typer.Option(help="With --feedback: the largest shift, in margin units (default 2)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be written; write nothing.")
    ] = False,
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

    objective = parse_objective(
        target_fpr, contamination, target_recall, thresholds, feedback=feedback, max_shift=max_shift
    )
    directory = resolve_artifacts_dir(artifacts_dir)
    with user_errors():
        try:
            result = tune_version(
                directory,
                version,
                objective,
                new_version=new_version,
                make_latest=not no_latest,
                dry_run=dry_run,
            )
        except TuningError as exc:
            fail(str(exc))
    record: dict[str, object] = {
        "version": result.version,
        "parent_version": result.parent_version,
        "objective": result.objective,
        "thresholds_before": result.before,
        "thresholds_after": result.after,
        "expected": result.expected,
        "latest": not no_latest and not dry_run,
    }
    if result.details is not None:
        record["feedback"] = result.details
    if dry_run:
        record["dry_run"] = True
    typer.echo(json.dumps(record, indent=2))
