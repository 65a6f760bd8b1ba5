"""The ``top4_relations`` window detector: the top-4 sum and the relation statistic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.data.timeseries import TimeSeriesDataset, synthetic_timeseries
from anomaly_api.detection.time_aware import (
    RATIO_QUANTILE,
    MaxZDetector,
    TimeAwareModel,
    detector_member_names,
)
from anomaly_api.training.time_aware import TimeAwareSettings, TrainedTimeAware, fit_time_aware

N_CHANNELS, N_KINDS = 8, 5
# per channel: residual and residual_mean are its 4th and 5th columns (channel-major)
RELATIONS = tuple((c * N_KINDS + 3, c * N_KINDS + 4) for c in range(N_CHANNELS))


@pytest.fixture(scope="module")
def normal_z() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4000, N_CHANNELS * N_KINDS))


def _break_row(size: float) -> np.ndarray:
    """Channels 2 and 5 off their relation by ``size`` sd in opposite directions."""
    row = np.zeros((1, N_CHANNELS * N_KINDS))
    row[0, RELATIONS[2][0]] = size
    row[0, RELATIONS[5][0]] = -size
    return row


def test_two_channels_off_their_relation_pass_where_the_top4_sum_does_not(
    normal_z: np.ndarray,
) -> None:
    top4 = MaxZDetector(top_k=4).fit(normal_z)
    relations = MaxZDetector(top_k=4, relation_columns=RELATIONS).fit(normal_z)
    row = _break_row(3.5)
    assert top4.combine(top4.detector_scores(row)).is_anomaly[0] == np.False_
    assert relations.combine(relations.detector_scores(row)).is_anomaly[0] == np.True_
    # each flags its training rows at the same rate: one score, one threshold
    for detector in (top4, relations):
        assert detector.combine(detector.detector_scores(normal_z)).is_anomaly.mean() == (
            pytest.approx(0.01, abs=0.001)
        )


def test_the_score_is_the_larger_ratio_to_the_training_percentiles(
    normal_z: np.ndarray,
) -> None:
    detector = MaxZDetector(top_k=4, relation_columns=RELATIONS).fit(normal_z)
    top = np.sqrt(np.sort(normal_z**2, axis=1)[:, -4:].sum(axis=1))
    per_channel = np.abs(normal_z[:, np.asarray(RELATIONS)]).max(axis=2)
    relation = np.sqrt(np.sort(per_channel**2, axis=1)[:, -2:].sum(axis=1))
    scales = np.percentile(np.column_stack([top, relation]), RATIO_QUANTILE, axis=0)
    np.testing.assert_allclose(detector.ratio_scales_, scales)
    expected = -np.maximum(top / scales[0], relation / scales[1])
    np.testing.assert_allclose(detector.detector_scores(normal_z)[:, 0], expected)


def test_parameters_names_and_detectors_saved_before_relations() -> None:
    detector = MaxZDetector(top_k=4, relation_columns=RELATIONS)
    assert vars(detector) == detector.get_params()
    assert detector_member_names(detector) == ("top4_relations",)
    z = np.random.default_rng(1).normal(size=(500, N_CHANNELS * N_KINDS))
    old = MaxZDetector(top_k=4).fit(z)
    state = old.__getstate__()
    del state["relation_columns"]
    loaded = MaxZDetector.__new__(MaxZDetector)
    loaded.__setstate__(state)
    assert loaded.get_params()["relation_columns"] is None
    assert detector_member_names(loaded) == ("top4_z",)
    np.testing.assert_array_equal(loaded.detector_scores(z), old.detector_scores(z))


@pytest.fixture(scope="module")
def series() -> TimeSeriesDataset:
    return synthetic_timeseries(seed=3, n_rows=6000)


@pytest.fixture(scope="module")
def trained(series: TimeSeriesDataset) -> TrainedTimeAware:
    return fit_time_aware(series, TimeAwareSettings(window=30, detector="top4_relations"))


def test_the_model_points_the_detector_at_each_channels_relation_features(
    trained: TrainedTimeAware,
) -> None:
    model = trained.model
    names = model.feature_names_
    columns = model.detector_.relation_columns
    assert columns is not None
    assert len(columns) == len(model.channels_)
    for channel, cols in zip(model.channels_, columns, strict=True):
        assert [names[c] for c in cols] == [f"{channel}:residual", f"{channel}:residual_mean"]
    assert trained.metrics["threshold_selection"]["detectors"].keys() == {"top4_relations"}


def test_one_new_reading_and_a_saved_model_score_as_the_frame_does(
    series: TimeSeriesDataset, trained: TrainedTimeAware
) -> None:
    model = trained.model
    w = model.history_needed
    frame = model.score_frame(series.data.X, series.segments)
    again = pickle.loads(pickle.dumps(model))
    for t in (w - 1, 3000, int(np.flatnonzero(frame.is_anomaly[w:])[0]) + w):
        window = slice(t - w + 1, t + 1)
        one = again.score_window(series.timestamps[window], series.data.X[window])
        assert one.anomaly_score[0].tobytes() == frame.anomaly_score[t].tobytes()
        assert one.contributions(0) == frame.contributions(t)


def test_a_single_channel_has_no_relations_and_keeps_the_top4_sum() -> None:
    values = np.cumsum(np.random.default_rng(0).normal(size=(400, 1)), axis=0)
    model = TimeAwareModel(window=10, short=3, detector="top4_relations").fit(values)
    assert model.detector_.relation_columns is None
    assert detector_member_names(model.detector_) == ("top4_z",)


def test_a_saved_version_loads_and_scores_as_trained(
    series: TimeSeriesDataset, tmp_path: Path
) -> None:
    from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
    from anomaly_api.training.time_aware import train_time_aware_and_save

    settings = TimeAwareSettings(window=30, detector="top4_relations")
    result = train_time_aware_and_save(series, tmp_path, settings)
    artifact = load_any_artifact(tmp_path, None)
    assert isinstance(artifact, TimeAwareArtifact)
    assert [d.name for d in artifact.manifest.detectors] == ["top4_relations"]
    X = series.data.X[:200]
    np.testing.assert_array_equal(
        artifact.model.score_frame(X).anomaly_score,
        result.trained.model.score_frame(X).anomaly_score,
    )
