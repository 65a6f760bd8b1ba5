"""The model commands: generate, train, evaluate, models — and their clean errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import MODEL_FILE, latest_version, load_artifact
from anomaly_api.cli.main import app
from anomaly_api.config import get_settings

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def sensor_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sensors.csv"
    code, out, _ = invoke("generate", "--out", path, "--rows", "1500", "--seed", "3")
    assert code == 0, out
    return path


def test_generate_writes_parquet(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    code, out, _ = invoke("generate", "--out", path, "--rows", "400")
    assert code == 0
    assert "wrote 400 rows" in out
    assert "spike 5" in out
    assert pd.read_parquet(path).shape == (400, 11)


def test_train_on_a_file_then_evaluate_and_list(sensor_csv: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "train", "--data", sensor_csv, "--artifacts-dir", tmp_path, "--version", "v1"
    )
    assert code == 0, err
    assert "- split (seed 42)" in err  # progress on stderr
    assert "model version v1 saved" in out
    assert "recall by anomaly kind" in out
    assert latest_version(tmp_path) == "v1"

    code, out, _ = invoke("evaluate", "--artifacts-dir", tmp_path)
    assert code == 0
    assert "held-out test split" in out

    code, out, _ = invoke("evaluate", "--artifacts-dir", tmp_path, "--data", sensor_csv, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["n_samples"] == 1500
    assert report["source"] == f"all rows of {sensor_csv}"

    code, out, _ = invoke("models", "--artifacts-dir", tmp_path)
    assert code == 0
    assert "* v1" in out


def test_train_with_features_and_fpr_target_as_json(sensor_csv: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "train",
        "--data",
        sensor_csv,
        "--features",
        "temperature, pressure,rpm",
        "--target-fpr",
        "0.02",
        "--artifacts-dir",
        tmp_path,
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["metrics"]["threshold_objective"] == "target-fpr=0.02"
    manifest = load_artifact(tmp_path).manifest
    assert manifest.feature_names == ["temperature", "pressure", "rpm"]


def test_train_without_labels_says_it_did_not_evaluate(sensor_csv: Path, tmp_path: Path) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(sensor_csv).drop(columns=["is_anomaly", "anomaly_kind"]).to_csv(unlabelled)
    code, out, err = invoke("train", "--data", unlabelled, "--artifacts-dir", tmp_path / "a")
    assert code == 0, err
    assert "not evaluated" in out
    code, _, err = invoke("evaluate", "--artifacts-dir", tmp_path / "a")
    assert code == 2
    assert "has no stored metrics" in err


def test_default_artifacts_dir_comes_from_settings(
    sensor_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALY_ARTIFACTS_DIR", str(tmp_path / "from-env"))
    get_settings.cache_clear()
    try:
        code, out, _ = invoke("models")
        assert code == 0
        assert "no model versions" in out
        code, _, err = invoke("train", "--data", sensor_csv, "--version", "env-1")
        assert code == 0, err
    finally:
        get_settings.cache_clear()
    assert latest_version(tmp_path / "from-env") == "env-1"


def _bad_csv(tmp_path: Path, column: str, values: object) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    frame["is_anomaly"] = [1] * 10 + [0] * 90
    frame[column] = values
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_fits_a_constant_column_with_a_warning(sensor_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(sensor_csv)
    frame["valve"] = 1.0
    path = tmp_path / "with-valve.csv"
    frame.to_csv(path, index=False)
    runs = {}
    for name, data in (("plain", sensor_csv), ("valve", path)):
        code, out, err = invoke(
            "train",
            "--data",
            data,
            "--artifacts-dir",
            tmp_path / "art",
            "--version",
            name,
            "--json",
        )
        assert code == 0, err
        runs[name] = (json.loads(out)["metrics"], err)
    metrics, err = runs["valve"]
    assert "- warning: feature 'valve' is constant in training: any change will be flagged" in err
    assert "warning" not in runs["plain"][1]
    assert metrics["constant_features"] == ["valve"]
    assert "constant_features" not in runs["plain"][0]
    # while it stays constant it changes little: held-out F1 as without it
    plain_f1 = runs["plain"][0]["test"]["detectors"]["ensemble"]["f1"]
    assert metrics["test"]["detectors"]["ensemble"]["f1"] == pytest.approx(plain_f1, abs=0.05)
    artifact = load_artifact(tmp_path / "art", "valve")
    model = artifact.model
    rows = frame[artifact.manifest.feature_names].to_numpy()
    rows[:, -1] = 1.001
    assert (model.predict(rows) == -1).all()


@pytest.mark.parametrize(
    ("column", "values", "extra", "message"),
    [
        ("a", np.nan, [], "feature column 'a' has 100 missing values"),
        ("name", "x", [], "column 'name' is not numeric"),
        ("a", 1.5, ["--features", "a,zz"], "feature column 'zz' not found"),
        ("a", 1.5, ["--label-column", "label"], "label column 'label' not found"),
    ],
)
def test_train_data_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, column: str, values: object, extra: list[str], message: str
) -> None:
    path = _bad_csv(tmp_path, column, values)
    code, _, err = invoke("train", "--data", path, "--artifacts-dir", tmp_path, *extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: {message}")
    assert [line for line in lines if not line.startswith("- ")] == lines[-1:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "missing.csv"], "missing.csv: no such file"),
        (["train", "--features", "a"], "--features and --label-column need --data"),
        (["train", "--data", "x.csv", "--features", " , "], "--features is empty"),
        (["evaluate", "--version", "nope"], "no model version 'nope'"),
        (["evaluate"], "no trained model"),
        (["train", "--target-fpr", "0"], "--target-fpr must be between 0 and 1"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = invoke(*args, "--artifacts-dir", tmp_path)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_too_few_rows_and_tampered_model(tmp_path: Path, default_artifacts_dir: Path) -> None:
    small = tmp_path / "small.csv"
    pd.DataFrame({"a": np.arange(20.0), "is_anomaly": [1] * 5 + [0] * 15}).to_csv(small)
    code, _, err = invoke("train", "--data", small, "--artifacts-dir", tmp_path)
    assert code == 2
    assert "need at least 50 rows, got 20" in err

    copy = tmp_path / "copy"
    shutil.copytree(default_artifacts_dir, copy)
    version = latest_version(copy)
    model_file = copy / str(version) / MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    code, _, err = invoke("evaluate", "--artifacts-dir", copy)
    assert code == 2
    assert "integrity check failed" in err


def test_evaluate_refuses_data_without_the_model_features(
    sensor_csv: Path, default_artifacts_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    pd.read_csv(sensor_csv).drop(columns=["rpm"]).to_csv(other, index=False)
    code, _, err = invoke("evaluate", "--artifacts-dir", default_artifacts_dir, "--data", other)
    assert code == 2
    assert "feature column 'rpm' not found" in err


def test_installed_command_exits_2_without_traceback(tmp_path: Path) -> None:
    """The real console script, in its own process, as a user runs it."""
    script = Path(sys.executable).with_name("anomaly-api")
    bad = _bad_csv(tmp_path, "name", "x")
    completed = subprocess.run(
        [str(script), "train", "--data", str(bad), "--artifacts-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: column 'name' is not numeric (str); choose numeric columns with --features"
    )
    assert "Traceback" not in completed.stderr
