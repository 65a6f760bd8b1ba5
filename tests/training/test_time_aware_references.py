"""A time-aware model keeps verified references, and its thresholds move without retraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import (
    ArtifactIntegrityError,
    TimeAwareArtifact,
    latest_version,
    list_versions,
    load_any_artifact,
)
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.monitoring.reference import DRIFT_REFERENCE_FILE
from anomaly_api.training.references import (
    SCORE_REFERENCE_FILE,
    load_references,
    tunable_detector,
)
from anomaly_api.training.revision import tune_version
from anomaly_api.training.time_aware import chronological_parts
from anomaly_api.training.tuning import Explicit, TargetFPR, TuningError, expected_rates


@pytest.fixture
def series(ta_series: TimeSeriesDataset) -> TimeSeriesDataset:
    return ta_series


@pytest.fixture
def artifacts(ta_artifacts: Path) -> Path:
    return ta_artifacts


def _load(directory: Path, version: str | None = None) -> TimeAwareArtifact:
    artifact = load_any_artifact(directory, version)
    assert isinstance(artifact, TimeAwareArtifact)
    return artifact


def test_training_keeps_references_that_describe_the_window_detector(
    ta_artifacts_dir: Path, series: TimeSeriesDataset
) -> None:
    artifact = _load(ta_artifacts_dir)
    manifest, model = artifact.manifest, artifact.model
    assert set(manifest.attachments) == {DRIFT_REFERENCE_FILE, SCORE_REFERENCE_FILE}
    refs = load_references(artifact.path, manifest)
    assert refs.drift is not None
    assert refs.drift.feature_names == tuple(manifest.feature_names) == tuple(model.channels_)
    assert refs.scores is not None
    assert refs.scores.has_labels
    assert refs.scores.detector_names == tuple(d.name for d in manifest.detectors) == ("top4_z",)
    # The kept validation windows say what the served model does on them.
    parts = chronological_parts(series.timestamps, labelled=True)
    out = model.score_frame(series.data.X, series.segments)
    validation = (parts == 1) & ~out.warming_up
    tunable = tunable_detector(model)
    expected = expected_rates(refs.scores, tunable.thresholds, tunable.decide())
    assert refs.scores.validation_scores is not None
    assert refs.scores.validation_scores.shape == (int(validation.sum()), 1)
    assert expected["flagged_validation_share"] == pytest.approx(out.is_anomaly[validation].mean())
    assert series.data.y is not None
    normal = validation & (series.data.y == 0)
    assert expected["fpr"] == pytest.approx(out.is_anomaly[normal].mean())


def test_a_tampered_score_reference_refuses_the_version(artifacts: Path) -> None:
    path = artifacts / "ta-1" / SCORE_REFERENCE_FILE
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ArtifactIntegrityError, match=r"score_reference\.npz"):
        load_any_artifact(artifacts)
    with pytest.raises(ArtifactIntegrityError):
        tune_version(artifacts, None, TargetFPR(0.01))
    assert [m.version for m in list_versions(artifacts)] == ["ta-1"]


def test_a_lower_fpr_target_flags_fewer_readings(
    artifacts: Path, series: TimeSeriesDataset
) -> None:
    loose = tune_version(artifacts, "ta-1", TargetFPR(0.05), new_version="ta-loose")
    strict = tune_version(artifacts, "ta-1", TargetFPR(0.002), new_version="ta-strict")
    assert latest_version(artifacts) == "ta-strict"
    assert strict.parent_version == loose.parent_version == "ta-1"
    assert strict.after["top4_z"] < loose.after["top4_z"]  # lower = more abnormal needed
    parent = _load(artifacts, "ta-1")
    test = chronological_parts(series.timestamps, labelled=True) == 2
    flagged = {}
    for name in ("ta-loose", "ta-strict"):
        tuned = _load(artifacts, name)  # verified like any version
        assert tuned.manifest.parent_version == "ta-1"
        assert tuned.manifest.tuning is not None
        assert tuned.manifest.attachments == parent.manifest.attachments
        offsets = tuned.model.detector_.offsets_
        assert [d.threshold for d in tuned.manifest.detectors] == offsets.tolist()
        # the warm-up ensemble keeps its thresholds
        np.testing.assert_array_equal(
            tuned.model.pointwise_.offsets_, parent.model.pointwise_.offsets_
        )
        out = tuned.model.score_frame(series.data.X[test], series.segments[test])
        flagged[name] = int(out.is_anomaly.sum())
    assert flagged["ta-strict"] < flagged["ta-loose"]
    assert strict.expected["fpr"] is not None
    assert strict.expected["fpr"] <= 0.01


@pytest.mark.parametrize(
    ("objective", "fragment"),
    [
        (TargetFPR(1.5), "must be in (0, 1)"),
        (Explicit({"zscore": -3.0}), "unknown detector"),
        (Explicit({"top4_z": float("nan")}), "finite"),
    ],
)
def test_bad_objectives_write_nothing(
    artifacts: Path, objective: TargetFPR | Explicit, fragment: str
) -> None:
    with pytest.raises(TuningError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        tune_version(artifacts, None, objective)
    assert [m.version for m in list_versions(artifacts)] == ["ta-1"]
    assert latest_version(artifacts) == "ta-1"
