"""Versioned, verified artifacts: round trip, integrity and library-version checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn

from anomaly_api.artifacts import (
    LATEST_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactVersionMismatchError,
    ArtifactVersionWarning,
    FittedModelInfo,
    file_sha256,
    fitted_model_of,
    latest_version,
    list_versions,
    load_artifact,
    set_latest,
)
from factories import TINY_FEATURES, fit_tiny_artifact


@pytest.fixture
def artifacts(tmp_path: Path, tiny_artifacts_dir: Path) -> Path:
    """A private, writable copy of the tiny artifact directory."""
    target = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, target)
    return target


def test_round_trip_keeps_predictions_and_manifest(tmp_path: Path) -> None:
    path = fit_tiny_artifact(tmp_path, version="v1")
    artifact = load_artifact(tmp_path)
    assert artifact.path == path
    manifest = artifact.manifest
    assert manifest.version == "v1"
    assert manifest.feature_names == TINY_FEATURES
    assert manifest.model_sha256 == file_sha256(path / MODEL_FILE)
    assert manifest.library_versions["scikit-learn"] == sklearn.__version__
    assert set(manifest.feature_stats) == set(TINY_FEATURES)
    assert [d.threshold for d in manifest.detectors] == artifact.model.offsets_.tolist()
    X = np.random.default_rng(1).normal(size=(30, 8))
    again = joblib.load(path / MODEL_FILE)
    assert np.array_equal(artifact.model.predict(X), again.predict(X))


def test_artifact_files_are_readable_by_other_users(tmp_path: Path) -> None:
    """A service running as another user (the container's) must read a mounted model."""
    path = fit_tiny_artifact(tmp_path, version="v1")
    for file in (path / MODEL_FILE, path / "manifest.json", tmp_path / "LATEST"):
        assert file.stat().st_mode & 0o044 == 0o044, file


def test_one_changed_byte_is_an_integrity_error(artifacts: Path) -> None:
    model_file = artifacts / "tiny-1" / MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="integrity check failed"):
        load_artifact(artifacts)


def _set_trained_sklearn(artifacts: Path, version: str) -> None:
    manifest_file = artifacts / "tiny-1" / MANIFEST_FILE
    manifest = json.loads(manifest_file.read_text())
    manifest["library_versions"]["scikit-learn"] = version
    manifest_file.write_text(json.dumps(manifest))


def test_other_sklearn_version_warns_or_is_refused(artifacts: Path) -> None:
    _set_trained_sklearn(artifacts, "0.0.1")
    with pytest.warns(ArtifactVersionWarning, match=r"scikit-learn trained 0\.0\.1"):
        artifact = load_artifact(artifacts)
    assert artifact.manifest.version == "tiny-1"
    with pytest.raises(ArtifactVersionMismatchError, match="other library versions"):
        load_artifact(artifacts, on_version_mismatch="error")


def test_latest_pointer_and_listing(artifacts: Path) -> None:
    fit_tiny_artifact(artifacts, version="tiny-2", seed=1)
    assert latest_version(artifacts) == "tiny-2"
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1", "tiny-2"]
    set_latest(artifacts, "tiny-1")
    assert (artifacts / LATEST_FILE).read_text().strip() == "tiny-1"
    assert load_artifact(artifacts).manifest.version == "tiny-1"
    assert load_artifact(artifacts, "tiny-2").manifest.version == "tiny-2"


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [
        ("nope", ArtifactNotFoundError, "no model version 'nope'"),
        ("../etc", ArtifactError, "invalid model version"),
    ],
)
def test_unknown_or_unsafe_versions_are_refused(
    artifacts: Path, version: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        load_artifact(artifacts, version)
    with pytest.raises(error, match=message):
        set_latest(artifacts, version)


def test_empty_directory_and_missing_model_file(tmp_path: Path, artifacts: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no trained model"):
        load_artifact(tmp_path)
    assert list_versions(tmp_path / "absent") == []
    (artifacts / "tiny-1" / MODEL_FILE).unlink()
    with pytest.raises(ArtifactNotFoundError, match="is missing"):
        load_artifact(artifacts)


def test_existing_version_is_not_overwritten(artifacts: Path) -> None:
    with pytest.raises(ArtifactError, match="already exists"):
        fit_tiny_artifact(artifacts, version="tiny-1")


def test_corrupt_manifest_and_foreign_object_are_refused(artifacts: Path) -> None:
    manifest_file = artifacts / "tiny-1" / MANIFEST_FILE
    original = manifest_file.read_text()
    manifest_file.write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest of 'tiny-1' is invalid"):
        load_artifact(artifacts)
    manifest_file.write_text(original)
    model_file = artifacts / "tiny-1" / MODEL_FILE
    joblib.dump({"not": "a model"}, model_file)
    manifest = json.loads(original)
    manifest["model_sha256"] = file_sha256(model_file)
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not an AnomalyEnsemble"):
        load_artifact(artifacts)


def test_format_1_artifacts_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    from anomaly_api.artifacts import MANIFEST_FILE

    fit_tiny_artifact(tmp_path)
    path = tmp_path / "tiny-1" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    assert manifest["format_version"] == 3
    del manifest["format_version"], manifest["scaling"]  # as written by format 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"artifact format 1.*retrain it"):
        load_artifact(tmp_path)


def test_a_manifest_without_lineage_is_its_own_fitted_model(artifacts: Path) -> None:
    """Trained versions, and revisions saved before ``fitted_model`` was recorded, lack it."""
    manifest_file = artifacts / "tiny-1" / MANIFEST_FILE
    data = json.loads(manifest_file.read_text())
    assert "fitted_model" in data  # written as null by a trained version
    del data["fitted_model"]
    data["parent_version"] = "tiny-0"  # an old revision: its parent, no root recorded
    manifest_file.write_text(json.dumps(data))
    manifest = load_artifact(artifacts).manifest
    assert manifest.fitted_model is None
    assert fitted_model_of(manifest) == FittedModelInfo(
        version="tiny-1", model_sha256=manifest.model_sha256
    )
