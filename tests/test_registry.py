"""The minimal named-model registry: names, directories, aliases written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import ArtifactNotFoundError
from anomaly_api.cli.main import app as cli
from anomaly_api.registry import model_dir, register_version, resolve_alias, validate_model_name
from factories import fit_tiny_artifact


@pytest.mark.parametrize("name", ["", "../x", ".x", "A", "a/b", "a" * 64, "-a", "a b"])
def test_names_that_could_leave_the_directory_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        validate_model_name(name)


def test_default_is_the_artifact_directory_and_others_live_under_models(tmp_path: Path) -> None:
    assert model_dir(tmp_path, "default") == tmp_path
    assert model_dir(tmp_path, "pump-a.2") == tmp_path / "models" / "pump-a.2"


def test_the_first_version_is_candidate_and_production(tmp_path: Path) -> None:
    directory = model_dir(tmp_path, "pumps")
    fit_tiny_artifact(directory, version="one")
    fit_tiny_artifact(directory, version="two")
    (directory / "LATEST").unlink()  # saved as a job saves them: no LATEST
    with pytest.raises(ArtifactNotFoundError):
        resolve_alias(tmp_path, "pumps")
    register_version(tmp_path, "pumps", "one")
    register_version(tmp_path, "pumps", "two")
    assert resolve_alias(tmp_path, "pumps") == "one"
    assert resolve_alias(tmp_path, "pumps", "candidate") == "two"
    assert json.loads((directory / "ALIASES.json").read_text()) == {
        "candidate": "two",
        "production": "one",
    }
    with pytest.raises(ArtifactNotFoundError):
        register_version(tmp_path, "pumps", "three")  # never saved


def test_an_old_directory_serves_latest_as_production(tiny_artifacts_dir: Path) -> None:
    assert resolve_alias(tiny_artifacts_dir, "default") == "tiny-1"


def test_train_model_saves_a_named_candidate(tmp_path: Path) -> None:
    args = ["train", "--artifacts-dir", str(tmp_path), "--model", "pumps", "--version", "v1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "pumps" / "v1" / "manifest.json").is_file()
    assert not (tmp_path / "LATEST").exists()  # the default model is untouched
    assert resolve_alias(tmp_path, "pumps", "candidate") == "v1"
    refused = CliRunner().invoke(
        cli, ["train", "--artifacts-dir", str(tmp_path), "--model", "../x"]
    )
    assert refused.exit_code == 2
    assert "invalid model name" in refused.output
