"""The training pipeline and the default model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import latest_version, load_artifact
from anomaly_api.data.loading import DataError, Dataset, synthetic_dataset
from anomaly_api.data.synthetic import SENSOR_CHANNELS
from anomaly_api.training.pipeline import (
    default_version,
    fit_and_evaluate,
    train_and_save,
    train_default_model,
)

NORMAL_EXAMPLE = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS_EXAMPLE = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]


def test_default_model_classifies_the_seed_examples(default_artifacts_dir: Path) -> None:
    artifact = load_artifact(default_artifacts_dir)
    assert artifact.manifest.feature_names == list(SENSOR_CHANNELS)
    output = artifact.model.explain(np.array([NORMAL_EXAMPLE, ANOMALOUS_EXAMPLE]))
    assert output.is_anomaly.tolist() == [False, True]
    assert output.votes[0].sum() == 0  # no detector flags the normal reading
    assert output.votes[1].all()


def test_default_model_manifest_records_split_and_metrics(default_artifacts_dir: Path) -> None:
    manifest = load_artifact(default_artifacts_dir).manifest
    metrics = manifest.metrics
    assert metrics is not None
    assert metrics["threshold_objective"] == "max-f1"
    assert metrics["split"] == {
        "seed": 42,
        "train": 6000,
        "fit": 5700,
        "validation": 2000,
        "test": 2000,
    }
    assert manifest.training_data.n_fit_rows == 5700
    test = metrics["test"]
    assert test["n_anomalies"] == 100
    assert set(test["per_kind_recall"]) == {
        "spike",
        "level_shift",
        "correlation_break",
        "stuck_sensor",
    }
    # Better than chance, not suspiciously perfect.
    assert 0.7 < test["detectors"]["ensemble"]["roc_auc"] < 0.99


def test_same_seed_and_data_give_identical_predictions(
    default_artifacts_dir: Path, tmp_path: Path
) -> None:
    path = train_default_model(tmp_path)
    assert path.parent == tmp_path
    again = load_artifact(tmp_path, path.name).model
    first = load_artifact(default_artifacts_dir).model
    X = synthetic_dataset(seed=9, n_rows=500).X
    assert np.array_equal(first.score_samples(X), again.score_samples(X))
    assert np.array_equal(first.offsets_, again.offsets_)


def test_training_twice_into_one_directory_keeps_both_versions(tmp_path: Path) -> None:
    dataset = synthetic_dataset(n_rows=400)
    first = train_and_save(dataset, tmp_path, version="v1")
    second = train_and_save(dataset, tmp_path)
    assert first.version == "v1"
    assert latest_version(tmp_path) == second.version
    assert (tmp_path / "v1").is_dir()


def test_target_fpr_objective_is_recorded() -> None:
    trained = fit_and_evaluate(synthetic_dataset(n_rows=2000), target_fpr=0.01)
    assert trained.metrics["threshold_objective"] == "target-fpr=0.01"
    assert trained.metrics["test"]["detectors"]["zscore"]["fpr"] < 0.05


def test_unlabelled_data_fits_on_every_row_without_metrics() -> None:
    labelled = synthetic_dataset(n_rows=300)
    dataset = Dataset(
        X=labelled.X, feature_names=labelled.feature_names, y=None, kinds=None, source="t"
    )
    progress: list[str] = []
    trained = fit_and_evaluate(dataset, progress=progress.append)
    assert trained.X_fit.shape == (300, 8)
    assert trained.metrics["test"] is None
    assert "not evaluated" in trained.metrics["note"]
    assert progress == ["no labels: fitting on all 300 rows"]


def test_too_few_normal_rows_to_fit_is_a_data_error() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 30, dtype=np.int64)
    dataset = Dataset(
        X=rng.normal(size=(60, 2)), feature_names=["a", "b"], y=y, kinds=None, source="t"
    )
    with pytest.raises(DataError, match="only 18 normal rows"):
        fit_and_evaluate(dataset)


def test_version_name_is_time_and_fingerprint() -> None:
    dataset = synthetic_dataset(n_rows=100)
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = default_version(dataset, 42, None, now)
    assert name.startswith("20250102T030405Z-")
    assert name == default_version(dataset, 42, None, now)
    assert name != default_version(dataset, 43, None, now)


def test_a_feature_constant_in_training_is_fitted_with_a_floor_and_named(tmp_path: Path) -> None:
    labelled = synthetic_dataset(n_rows=1500)
    X = np.column_stack([labelled.X, np.full(labelled.n_rows, 7.0)])
    names = [*labelled.feature_names, "setpoint"]
    dataset = Dataset(X=X, feature_names=names, y=labelled.y, kinds=labelled.kinds, source="t")
    progress: list[str] = []
    trained = fit_and_evaluate(dataset, progress=progress.append)
    warning = "warning: feature 'setpoint' is constant in training: any change will be flagged"
    assert progress.count(warning) == 1
    assert trained.metrics["constant_features"] == ["setpoint"]
    # the other features keep the scaling, thresholds and answers of the model without it
    without = fit_and_evaluate(labelled)
    assert "constant_features" not in without.metrics
    np.testing.assert_array_equal(trained.model.scale_[:-1], without.model.scale_)
    rows = X[trained.split.test] if trained.split is not None else X
    assert (trained.model.predict(rows) == without.model.predict(rows[:, :-1])).mean() > 0.95
    moved = rows.copy()
    moved[:, -1] = 7.01
    assert (trained.model.predict(moved) == -1).all()
    result = train_and_save(dataset, tmp_path, progress=progress.append)
    manifest = load_artifact(tmp_path, result.version).manifest
    assert manifest.scaling is not None
    assert manifest.scaling["setpoint"].rule == "floor"
    assert manifest.scaling["setpoint"].scale == pytest.approx(7e-6)


def test_a_feature_that_varies_only_in_anomalous_rows_is_floored_and_flags_them() -> None:
    rng = np.random.default_rng(0)
    y = np.array([1] * 40 + [0] * 260, dtype=np.int64)
    X = np.column_stack([rng.normal(size=(300, 2)), y * 5.0])  # varies only where anomalous
    dataset = Dataset(X=X, feature_names=["a", "b", "flag"], y=y, kinds=None, source="t")
    trained = fit_and_evaluate(dataset)
    assert trained.metrics["constant_features"] == ["flag"]
    ensemble = trained.metrics["test"]["detectors"]["ensemble"]
    assert ensemble["recall"] == 1.0
    assert ensemble["fpr"] == 0.0
