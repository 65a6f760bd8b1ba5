"""What a model version keeps beside its model for monitoring and retuning.

* ``drift_reference.json``: the training distribution of every input feature (for a
  time-aware model: every raw channel) (``anomaly_api.monitoring.reference``), for drift
  tracking;
* ``score_reference.npz``: the scores of the detector that decides (``tunable_detector``:
  the ensemble of a point-wise model, the window detector of a time-aware one) on the rows
  the model was fitted on, and on the labelled validation rows when there were labels
  (``anomaly_api.training.tuning.ScoreReference``), for moving thresholds later.

Both are attachments of the artifact: their SHA-256 is in the manifest and is checked
before either is read (``attachment_path``); a file the manifest does not list is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import ArtifactManifest, attachment_path
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.time_aware import MaxZDetector, TimeAwareModel, detector_member_names
from anomaly_api.monitoring.adaptation import AdaptationModel
from anomaly_api.monitoring.reference import (
    DRIFT_REFERENCE_FILE,
    DriftReference,
    build_drift_reference,
)
from anomaly_api.training.tuning import Decide, ScoreReference, vote_decision

SCORE_REFERENCE_FILE: Final = "score_reference.npz"

__all__ = [
    "DRIFT_REFERENCE_FILE",
    "SCORE_REFERENCE_FILE",
    "ModelReferences",
    "TunableDetector",
    "build_references",
    "load_references",
    "reference_attachments",
    "score_reference",
    "tunable_detector",
]


@dataclass(frozen=True)
class ModelReferences:
    """A version's drift and score references (each None when it was saved without)."""

    drift: DriftReference | None
    scores: ScoreReference | None


@dataclass(frozen=True)
class TunableDetector:
    """The detector whose thresholds decide and can move: a point-wise model's ensemble,
    a time-aware model's window detector (its warm-up ensemble keeps its thresholds)."""

    names: tuple[str, ...]
    detector: AnomalyEnsemble | MaxZDetector

    @property
    def thresholds(self) -> NDArray[np.float64]:
        """The current thresholds, one per name."""
        return np.asarray(self.detector.offsets_, dtype=np.float64).reshape(len(self.names))

    @property
    def scales(self) -> NDArray[np.float64]:
        """Each threshold's scale: a margin is (threshold - score) / scale."""
        return np.asarray(self.detector.scales_, dtype=np.float64).reshape(len(self.names))

    @property
    def min_votes(self) -> int:
        """Members that must agree for an anomaly."""
        return int(self.detector.min_votes)

    def decide(self) -> Decide:
        """The detector's decision over a score matrix (for ``expected_rates``)."""
        return vote_decision(self.min_votes)


def tunable_detector(model: AnomalyEnsemble | TimeAwareModel) -> TunableDetector:
    """The detector of ``model`` that a score reference describes (see ``TunableDetector``)."""
    if isinstance(model, TimeAwareModel):
        return TunableDetector(detector_member_names(model.detector_), model.detector_)
    return TunableDetector(tuple(str(n) for n in model.detectors_), model)


def score_reference(
    names: tuple[str, ...],
    train_scores: NDArray[np.float64],
    validation: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
    calibration_scores: NDArray[np.float64] | None = None,
) -> ScoreReference:
    """A ``ScoreReference``; ``validation`` (scores, labels) is kept only when it holds
    both classes (otherwise it could not say anything about recall or precision);
    ``calibration_scores`` are held-out normal rows' scores."""
    val_scores = val_labels = None
    if validation is not None:
        scores, y = validation
        labels = np.asarray(y, dtype=np.int64)
        if 0 < int(labels.sum()) < labels.shape[0]:
            val_scores, val_labels = scores, labels
    return ScoreReference(
        detector_names=names,
        train_scores=train_scores,
        validation_scores=val_scores,
        validation_labels=val_labels,
        calibration_scores=calibration_scores,
    )


def build_references(
    model: AnomalyEnsemble,
    feature_names: list[str],
    X_fit: NDArray[np.float64],
    validation: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
    X_calibration: NDArray[np.float64] | None = None,
) -> ModelReferences:
    """The references of a fitted ensemble: ``X_fit`` its fitted rows, ``validation``
    the labelled validation rows ``(X, y)`` when there were labels, ``X_calibration``
    the held-out normal rows its thresholds were calibrated on."""
    names = tunable_detector(model).names
    val = None if validation is None else (model.detector_scores(validation[0]), validation[1])
    calibration = None if X_calibration is None else model.detector_scores(X_calibration)
    scores = score_reference(names, model.detector_scores(X_fit), val, calibration)
    return ModelReferences(drift=build_drift_reference(X_fit, feature_names), scores=scores)


def reference_attachments(references: ModelReferences) -> dict[str, bytes]:
    """The references as artifact attachments (file name -> bytes)."""
    out: dict[str, bytes] = {}
    if references.drift is not None:
        out[DRIFT_REFERENCE_FILE] = json.dumps(
            references.drift.to_dict(), separators=(",", ":")
        ).encode()
    if references.scores is not None:
        out[SCORE_REFERENCE_FILE] = references.scores.to_bytes()
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


def adaptation_model(
    model: AnomalyEnsemble | TimeAwareModel, scores: ScoreReference | None, memory: float
) -> AdaptationModel | None:
    """How a stream's threshold may follow its normal operation (``monitoring/adaptation``):
    the ``anomaly_score`` level of the normal readings the version kept, scored by its
    current thresholds (a threshold revision moves the level with them); None when the
    version kept no scores."""
    if scores is None:
        return None
    normal = scores.normal_scores()
    if normal.shape[0] == 0:
        return None
    tunable = tunable_detector(model)
    return AdaptationModel.from_scores(
        tunable.detector.combine(normal).anomaly_score, memory=memory
    )
