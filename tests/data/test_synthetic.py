"""The synthetic sensor data generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly_api.data.anomalies import ANOMALY_KINDS, correlated_pairs
from anomaly_api.data.synthetic import SENSOR_CHANNELS, generate_sensor_data

NORMAL_EXAMPLE = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_sensor_data()


def test_shape_columns_and_timestamps(frame: pd.DataFrame) -> None:
    assert len(SENSOR_CHANNELS) == 8
    assert list(frame.columns) == ["timestamp", *SENSOR_CHANNELS, "is_anomaly", "anomaly_kind"]
    assert len(frame) == 10_000
    steps = frame["timestamp"].diff().dropna().unique()
    assert steps.tolist() == [pd.Timedelta(minutes=5)]
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_five_percent_anomalies_split_over_four_kinds(frame: pd.DataFrame) -> None:
    assert frame["is_anomaly"].sum() == 500
    counts = frame.loc[frame["is_anomaly"] == 1, "anomaly_kind"].value_counts()
    assert set(counts.index) == set(ANOMALY_KINDS)
    assert counts.tolist() == [125] * 4
    assert (frame.loc[frame["is_anomaly"] == 0, "anomaly_kind"] == "normal").all()


def test_normal_rows_are_standardized(frame: pd.DataFrame) -> None:
    normal = frame.loc[frame["is_anomaly"] == 0, list(SENSOR_CHANNELS)]
    assert normal.mean().abs().max() < 1e-9
    assert normal.std(ddof=0).to_numpy() == pytest.approx(np.ones(8))


def test_channels_are_correlated(frame: pd.DataFrame) -> None:
    normal = frame.loc[frame["is_anomaly"] == 0, list(SENSOR_CHANNELS)].to_numpy()
    pairs = correlated_pairs(normal)
    assert len(pairs) >= 4
    assert max(abs(rho) for *_, rho in pairs) < 0.9  # correlated, not collinear


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate_sensor_data(2000, seed=7)
    pd.testing.assert_frame_equal(a, generate_sensor_data(2000, seed=7))
    b = generate_sensor_data(2000, seed=8)
    assert not np.allclose(a[list(SENSOR_CHANNELS)], b[list(SENSOR_CHANNELS)])


def test_stuck_sensor_segments_are_flat_in_one_channel(frame: pd.DataFrame) -> None:
    stuck = (frame["anomaly_kind"] == "stuck_sensor").to_numpy()
    starts = np.flatnonzero(stuck & ~np.roll(stuck, 1))
    values = frame[list(SENSOR_CHANNELS)].to_numpy()
    for start in starts:
        stop = start + int(np.argmin(stuck[start:])) if not stuck[start:].all() else len(stuck)
        segment = values[start:stop]
        flat = np.all(segment == segment[0], axis=0)
        assert flat.sum() == 1
        channel = int(np.argmax(flat))
        assert segment[0, channel] == values[start - 1, channel]  # frozen at the last value


def test_correlation_breaks_are_plausible_alone(frame: pd.DataFrame) -> None:
    rows = frame.loc[frame["anomaly_kind"] == "correlation_break", list(SENSOR_CHANNELS)]
    assert rows.abs().to_numpy().max() < 4.0


def test_normal_seed_example_is_typical_under_the_distribution(frame: pd.DataFrame) -> None:
    normal = frame.loc[frame["is_anomaly"] == 0, list(SENSOR_CHANNELS)].to_numpy()
    precision = np.linalg.inv(np.cov(normal, rowvar=False))
    centred = normal - normal.mean(axis=0)
    distances = np.einsum("ij,jk,ik->i", centred, precision, centred)
    example = np.array(NORMAL_EXAMPLE) - normal.mean(axis=0)
    distance = example @ precision @ example
    assert (distances < distance).mean() < 0.5  # closer to the centre than most readings


def test_small_and_anomaly_free_frames() -> None:
    small = generate_sensor_data(40, seed=1)
    assert small["is_anomaly"].sum() == 2
    clean = generate_sensor_data(100, anomaly_fraction=0.0)
    assert clean["is_anomaly"].sum() == 0


@pytest.mark.parametrize(("rows", "fraction"), [(5, 0.05), (100, 0.7)])
def test_bad_arguments_are_refused(rows: int, fraction: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate_sensor_data(rows, anomaly_fraction=fraction)
