"""A threshold revision: a new model version with moved thresholds, no retraining.

``tune_version`` loads and verifies a version (point-wise or time-aware), computes new
thresholds for one ``Objective`` from the scores the version kept (``score_reference.npz``)
for the detector that decides (``tunable_detector``: the ensemble, or a time-aware model's
window detector; its warm-up ensemble keeps its thresholds), and saves a new version: the
same model with ``set_offsets`` on that detector, its own manifest (``parent_version``,
``fitted_model``: the trained version at the root of the chain, whose fit it still serves,
``tuning`` with the objective, before/after thresholds and the expected rates) and the
parent's references (re-hashed into the new manifest). Like training, it points
``LATEST`` at the new version unless told not to. Used by ``anomaly-api tune`` and
``POST /admin/thresholds``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from anomaly_api.artifacts import (
    ArtifactError,
    DetectorInfo,
    attachment_path,
    fitted_model_of,
    load_any_artifact,
    save_artifact,
    validate_version_name,
)
from anomaly_api.training.calibration import statement
from anomaly_api.training.references import load_references, tunable_detector
from anomaly_api.training.tuning import (
    MarginShift,
    Objective,
    ScoreReference,
    TargetFPR,
    TuningError,
    describe,
    expected_rates,
    fpr_calibration,
    retune,
)

__all__ = ["TuneResult", "tune_version", "tuned_version_name"]


@dataclass(frozen=True)
class TuneResult:
    """A saved threshold revision."""

    version: str
    parent_version: str
    path: Path
    objective: str
    before: dict[str, float]
    after: dict[str, float]
    expected: dict[str, float | None]
    details: dict[str, Any] | None = None
    """What a margin shift was computed from (e.g. the feedback counts), else None."""
    written: bool = True
    """False for a dry run: nothing was saved."""


def tuned_version_name(parent: str, objective: str, now: datetime) -> str:
    """``<parent>-t<8 hex of the objective and time>``, cut to the allowed 100 characters."""
    digest = hashlib.sha256(f"{parent}|{objective}|{now.isoformat()}".encode()).hexdigest()
    suffix = f"-t{digest[:8]}"
    return parent[: 100 - len(suffix)] + suffix


def require_score_reference(directory: Path, manifest: Any) -> ScoreReference:
    """The version's kept scores, or ``TuningError`` saying the version cannot be tuned."""
    scores = load_references(directory, manifest).scores
    if scores is None:
        raise TuningError(
            f"model {manifest.version!r} kept no detector scores (trained before thresholds "
            "could be moved); retrain it with `anomaly-api train`"
        )
    return scores


def tune_version(
    artifacts_dir: Path,
    version: str | None,
    objective: Objective,
    *,
    new_version: str | None = None,
    make_latest: bool = True,
    dry_run: bool = False,
) -> TuneResult:
    """Save a revision of ``version`` (``LATEST`` when None) with thresholds for ``objective``.

    Raises ``TuningError`` (bad objective, unknown detector, nothing kept to tune from)
    or ``ArtifactError`` (no such version, integrity, a name already taken); nothing is
    written then, nor with ``dry_run`` (the result says what would be written).
    """
    artifact = load_any_artifact(artifacts_dir, version)
    manifest, model = artifact.manifest, artifact.model
    scores = require_score_reference(artifact.path, manifest)
    tunable = tunable_detector(model)
    names = list(tunable.names)
    if list(scores.detector_names) != names:
        raise TuningError(
            f"the kept scores are for detectors {list(scores.detector_names)}, "
            f"the model has {names}"
        )
    before = tunable.thresholds
    if isinstance(objective, TargetFPR):
        calibration = fpr_calibration(
            scores, before, tunable.scales, tunable.min_votes, objective.fpr
        )
        after, false_alarms = calibration.offsets, calibration.statement
    else:
        after = retune(scores, before, objective, tunable.scales, tunable.min_votes)
        normal = scores.normal_scores()
        false_alarms = statement(
            None,
            int(tunable.decide()(normal, after).sum()),
            len(normal),
            f"counted on the {len(normal)} {scores.normal_source()} (Clopper-Pearson bound)",
        )
    if after.shape != before.shape or not np.all(np.isfinite(after)):
        raise TuningError("the objective gave no finite threshold for every detector")
    now = datetime.now(UTC)
    label = describe(objective)
    name = validate_version_name(new_version or tuned_version_name(manifest.version, label, now))
    if (artifacts_dir / name).exists():
        raise ArtifactError(f"model version {name!r} already exists in {artifacts_dir}")
    expected = expected_rates(scores, after, tunable.decide())
    before_map = dict(zip(names, (float(v) for v in before), strict=True))
    after_map = dict(zip(names, (float(v) for v in after), strict=True))
    detectors = [
        DetectorInfo(
            name=d.name, threshold=after_map[d.name], scale=d.scale, n_components=d.n_components
        )
        for d in manifest.detectors
    ]
    tuning = {
        "objective": label,
        "thresholds_before": before_map,
        "thresholds_after": after_map,
        "expected": expected,
        "labelled_validation": scores.has_labels,
    }
    details = dict(objective.details) if isinstance(objective, MarginShift) else None
    if details is not None:
        tuning["details"] = details
    result = TuneResult(
        version=name,
        parent_version=manifest.version,
        path=artifacts_dir / name,
        objective=label,
        before=before_map,
        after=after_map,
        expected=expected,
        details=details,
        written=not dry_run,
    )
    if dry_run:
        return result
    tunable.detector.set_offsets(after)
    new_manifest = manifest.model_copy(
        update={
            "version": name,
            "created_at": now,
            "detectors": detectors,
            "parent_version": manifest.version,
            "fitted_model": fitted_model_of(manifest),
            "tuning": tuning,
            "metrics": {
                **(manifest.metrics or {}),
                "threshold_objective": label,
                "false_alarm_rate": false_alarms,
                "note": "thresholds moved by `anomaly-api tune`; the test metrics are the "
                "parent's (see tuning.expected for the new thresholds)",
            },
        }
    )
    attachments: dict[str, bytes] = {}
    for file_name in manifest.attachments:
        path = attachment_path(artifact.path, manifest, file_name)
        if path is not None:
            attachments[file_name] = path.read_bytes()
    path = save_artifact(
        model, new_manifest, artifacts_dir, make_latest=make_latest, attachments=attachments
    )
    return replace(result, path=path)
