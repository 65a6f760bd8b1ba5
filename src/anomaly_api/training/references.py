"""What a point-wise model version keeps beside its model for monitoring and retuning.

* ``drift_reference.json``: the training distribution of every feature
  (``anomaly_api.monitoring.reference``), for drift tracking;
* ``score_reference.npz``: each detector's scores on the rows the model was fitted on,
  and on the labelled validation rows when there were labels
  (``anomaly_api.training.tuning.ScoreReference``), for moving thresholds later.

Both are attachments of the artifact: their SHA-256 is in the manifest and is checked
before either is read (``attachment_path``); a file the manifest does not list is ignored.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import ArtifactManifest, attachment_path
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.monitoring.reference import (
    DRIFT_REFERENCE_FILE,
    DriftReference,
    build_drift_reference,
)
from anomaly_api.training.tuning import ScoreReference

SCORE_REFERENCE_FILE: Final = "score_reference.npz"

__all__ = [
    "DRIFT_REFERENCE_FILE",
    "SCORE_REFERENCE_FILE",
    "ModelReferences",
    "build_references",
    "load_references",
    "reference_attachments",
]


@dataclass(frozen=True)
class ModelReferences:
    """A version's drift and score references (each None when it was saved without)."""

    drift: DriftReference | None
    scores: ScoreReference | None


def build_references(
    model: AnomalyEnsemble,
    feature_names: list[str],
    X_fit: NDArray[np.float64],
    validation: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
) -> ModelReferences:
    """The references of a fitted ensemble: ``X_fit`` its fitted rows, ``validation``
    the labelled validation rows ``(X, y)`` when there were labels."""
    names = tuple(str(n) for n in model.detectors_)
    val_scores = val_labels = None
    if validation is not None:
        X_val, y_val = validation
        labels = np.asarray(y_val, dtype=np.int64)
        if 0 < int(labels.sum()) < labels.shape[0]:  # both classes, else unusable
            val_scores, val_labels = model.detector_scores(X_val), labels
    scores = ScoreReference(
        detector_names=names,
        train_scores=model.detector_scores(X_fit),
        validation_scores=val_scores,
        validation_labels=val_labels,
    )
    return ModelReferences(drift=build_drift_reference(X_fit, feature_names), scores=scores)


def reference_attachments(references: ModelReferences) -> dict[str, bytes]:
    """The references as artifact attachments (file name -> bytes)."""
    out: dict[str, bytes] = {}
    if references.drift is not None:
        out[DRIFT_REFERENCE_FILE] = json.dumps(
            references.drift.to_dict(), separators=(",", ":")
        ).encode()
    if references.scores is not None:
        s = references.scores
        arrays: dict[str, NDArray[np.generic]] = {
            "detector_names": np.asarray(s.detector_names, dtype=np.str_),
            "train_scores": s.train_scores,
        }
        if s.validation_scores is not None and s.validation_labels is not None:
            arrays["validation_scores"] = s.validation_scores
            arrays["validation_labels"] = s.validation_labels
        sink = io.BytesIO()
        np.savez_compressed(sink, **arrays)  # type: ignore[arg-type]
        out[SCORE_REFERENCE_FILE] = sink.getvalue()
    return out


def load_references(directory: Path, manifest: ArtifactManifest) -> ModelReferences:
    """Verify (SHA-256 against the manifest) and read a version's references.

    Raises ``ArtifactIntegrityError`` for a listed file that is missing or altered and
    ``ValueError`` for a malformed one.
    """
    drift_path = attachment_path(directory, manifest, DRIFT_REFERENCE_FILE)
    drift = None
    if drift_path is not None:
        data = json.loads(drift_path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{drift_path}: expected a JSON object")
        drift = DriftReference.from_dict(data)
    scores_path = attachment_path(directory, manifest, SCORE_REFERENCE_FILE)
    scores = None if scores_path is None else ScoreReference.load(scores_path)
    return ModelReferences(drift=drift, scores=scores)
