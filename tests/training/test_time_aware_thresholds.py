"""Labelled time-aware training: max F1 with the normal floor, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.training.time_aware import (
    DEFAULT_NORMAL_FLOOR,
    TimeAwareSettings,
    TrainedTimeAware,
    fit_time_aware,
)


@pytest.fixture(scope="module")
def floored(ta_series: TimeSeriesDataset) -> TrainedTimeAware:
    return fit_time_aware(ta_series)


@pytest.fixture(scope="module")
def plain(ta_series: TimeSeriesDataset) -> TrainedTimeAware:
    return fit_time_aware(ta_series, TimeAwareSettings(normal_floor=None))


def test_default_keeps_the_stricter_of_max_f1_and_the_normal_floor(
    floored: TrainedTimeAware,
) -> None:
    metrics = floored.metrics
    assert metrics["threshold_objective"] == f"max-f1, normal-floor={DEFAULT_NORMAL_FLOOR:g}"
    selection = metrics["threshold_selection"]
    assert selection["normal_floor_sd"] == DEFAULT_NORMAL_FLOOR
    chosen = selection["detectors"]["top4_z"]
    offset = float(floored.model.detector_.offsets_[0])
    assert offset == pytest.approx(min(chosen["max_f1"], chosen["normal_floor"]))
    # on this seed max F1 sits on the normal tail and the floor is the stricter one
    assert chosen["floor_kept"]
    assert offset < chosen["max_f1"]


def test_normal_floor_none_is_plain_max_f1(
    floored: TrainedTimeAware, plain: TrainedTimeAware
) -> None:
    assert plain.metrics["threshold_objective"] == "max-f1"
    assert "threshold_selection" not in plain.metrics
    chosen = floored.metrics["threshold_selection"]["detectors"]["top4_z"]
    assert float(plain.model.detector_.offsets_[0]) == pytest.approx(chosen["max_f1"])
    # the stricter floor flags fewer held-out readings
    test = floored.metrics["test"]
    assert test["fpr"] <= plain.metrics["test"]["fpr"]
    assert test["precision"] >= plain.metrics["test"]["precision"]


def test_target_fpr_ignores_the_floor(ta_series: TimeSeriesDataset) -> None:
    trained = fit_time_aware(ta_series, TimeAwareSettings(target_fpr=0.01))
    assert trained.metrics["threshold_objective"] == "target-fpr=0.01"
    assert "threshold_selection" not in trained.metrics


def test_saved_manifest_records_the_threshold_method(ta_artifacts_dir: Path) -> None:
    artifact = load_any_artifact(ta_artifacts_dir)
    assert isinstance(artifact, TimeAwareArtifact)
    metrics = artifact.manifest.metrics
    assert metrics["threshold_objective"] == f"max-f1, normal-floor={DEFAULT_NORMAL_FLOOR:g}"
    detector = metrics["threshold_selection"]["detectors"]["top4_z"]
    assert artifact.manifest.detectors[0].threshold == pytest.approx(
        min(detector["max_f1"], detector["normal_floor"])
    )
    assert np.isfinite(detector["normal_floor"])
