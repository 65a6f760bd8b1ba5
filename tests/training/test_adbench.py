"""Training on a real, public labelled data set with another number of features."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomaly_api.cli.main import app

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
THYROID = DATASETS / "adbench_classical" / "thyroid.csv"


@pytest.fixture
def thyroid_csv() -> Path:
    if not THYROID.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{THYROID} is missing; CI must provide ../shared/datasets")
        pytest.skip(f"{THYROID} is not available outside CI")
    return THYROID


def test_train_on_thyroid_reports_metrics_against_its_labels(
    thyroid_csv: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["train", "--data", str(thyroid_csv), "--artifacts-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    test = metrics["test"]
    assert test["n_samples"] == 755  # 20% of 3,772 rows
    assert test["n_anomalies"] == 19
    assert "per_kind_recall" not in test
    # Published IsolationForest ROC-AUC on thyroid is about 0.98; ours must be close.
    assert test["detectors"]["isolation_forest"]["roc_auc"] > 0.95
    assert test["detectors"]["ensemble"]["roc_auc"] > 0.95
    assert test["detectors"]["ensemble"]["f1"] > 0.5
