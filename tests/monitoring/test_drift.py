"""Drift tracking: the training reference, the ring buffer, PSI and KS, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp

from anomaly_api.monitoring.drift import (
    DriftThresholds,
    DriftTracker,
    population_stability_index,
)
from anomaly_api.monitoring.reference import (
    DriftReference,
    build_drift_reference,
    load_drift_reference,
    save_drift_reference,
)

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(5000, 3))


@pytest.fixture(scope="module")
def reference(training: np.ndarray) -> DriftReference:
    return build_drift_reference(training, NAMES)


def test_reference_is_a_sketch_of_quantiles_and_decile_bins(
    reference: DriftReference, training: np.ndarray
) -> None:
    assert reference.sketch.shape == (1000, 3)
    assert reference.training_rows == 5000
    np.testing.assert_allclose(reference.bin_shares, 0.1, atol=1e-3)
    np.testing.assert_allclose(
        reference.sketch[499, 0], np.quantile(training[:, 0], 0.4995), rtol=1e-12
    )
    assert reference.bin_edges.shape == (3, 9)


def test_small_training_data_is_kept_whole() -> None:
    data = np.arange(40.0).reshape(20, 2)[::-1]
    ref = build_drift_reference(data, ["x", "y"])
    np.testing.assert_array_equal(ref.sketch, np.sort(data, axis=0))


def test_reference_round_trips_through_json(reference: DriftReference, tmp_path: Path) -> None:
    path = save_drift_reference(reference, tmp_path)
    loaded = load_drift_reference(tmp_path)
    assert loaded is not None
    assert loaded.feature_names == reference.feature_names
    np.testing.assert_array_equal(loaded.sketch, reference.sketch)
    np.testing.assert_array_equal(loaded.bin_edges, reference.bin_edges)
    np.testing.assert_array_equal(loaded.bin_shares, reference.bin_shares)
    assert json.loads(path.read_text())["format"] == "quantile-sketch/v1"


def test_no_reference_file_means_none(tmp_path: Path) -> None:
    assert load_drift_reference(tmp_path) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "unknown drift reference format"),
        ({"feature_names": ["a", "a", "c"]}, "distinct"),
        ({"bin_shares": [[1.0] + [0.0] * 9] * 2}, "bin_shares must have 3 rows"),
        ({"training_rows": 0}, "training_rows"),
        ({"sketch": [[1.0, 0.0]] * 3}, "sorted"),
        ({"sketch": [[float("nan")]] * 3}, "non-finite"),
    ],
)
def test_malformed_reference_is_refused(
    reference: DriftReference, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = {**reference.to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        DriftReference.from_dict(data)


def test_reference_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "drift_reference.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_drift_reference(tmp_path)


@pytest.mark.parametrize(
    ("X", "names", "kwargs", "message"),
    [
        (np.zeros((10, 2)), ["a"], {}, "has 2 features, expected 1"),
        (np.array([[1.0, np.inf]] * 5), ["a", "b"], {}, "non-finite"),
        (np.zeros((1, 2)), ["a", "b"], {}, "at least 2 training rows"),
        (np.zeros((2, 2, 2)), ["a", "b"], {}, "2-D"),
        (np.zeros((10, 1)), ["a"], {"sketch_rows": 5}, "sketch_rows"),
        (np.zeros((10, 1)), ["a"], {"n_bins": 1}, "n_bins"),
    ],
)
def test_bad_training_data_is_refused(
    X: np.ndarray, names: list[str], kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_drift_reference(X, names, **kwargs)


def test_ring_buffer_keeps_the_last_rows_in_order(reference: DriftReference) -> None:
    tracker = DriftTracker(reference, window_rows=5)
    assert tracker.window().shape == (0, 3)
    rows = np.arange(39.0).reshape(13, 3)
    tracker.update(rows[:3])
    np.testing.assert_array_equal(tracker.window(), rows[:3])
    tracker.update(rows[3:7])  # wraps around
    np.testing.assert_array_equal(tracker.window(), rows[2:7])
    tracker.update(rows[7])  # one row, 1-D
    np.testing.assert_array_equal(tracker.window(), rows[3:8])
    tracker.update(rows[8:13])  # exactly a window
    np.testing.assert_array_equal(tracker.window(), rows[8:13])
    tracker.update(np.vstack([rows, rows]))  # more than a window
    np.testing.assert_array_equal(tracker.window(), rows[8:13])
    tracker.update(np.empty((0, 3)))
    assert (tracker.rows_held, tracker.rows_seen) == (5, 13 + 26)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.zeros((2, 4)), "has 4 features, expected 3"),
        (np.array([[0.0, np.nan, 0.0]]), "non-finite"),
        (np.zeros((2, 3, 1)), "2-D"),
    ],
)
def test_bad_rows_are_refused_and_change_nothing(
    reference: DriftReference, rows: np.ndarray, message: str
) -> None:
    tracker = DriftTracker(reference, window_rows=10)
    tracker.update(np.ones((2, 3)))
    with pytest.raises(ValueError, match=message):
        tracker.update(rows)
    assert (tracker.rows_held, tracker.rows_seen) == (2, 2)


def test_same_distribution_does_not_drift_and_a_shift_does(reference: DriftReference) -> None:
    rng = np.random.default_rng(1)
    tracker = DriftTracker(reference, window_rows=1000)
    tracker.update(rng.normal(size=(1000, 3)))
    assert not any(f.drifted for f in tracker.features())
    shifted = rng.normal(size=(1000, 3))
    shifted[:, 1] += 1.0
    tracker.update(shifted)
    drift = {f.feature: f for f in tracker.features()}
    assert [name for name, f in drift.items() if f.drifted] == ["b"]
    assert drift["b"].psi > 0.1
    assert drift["b"].ks_pvalue < 1e-10
    assert drift["a"].ks_pvalue > 0.01


def test_ks_matches_scipy_against_the_sketch(reference: DriftReference) -> None:
    window = np.random.default_rng(2).normal(loc=0.1, size=(300, 3))
    tracker = DriftTracker(reference, window_rows=300)
    tracker.update(window)
    first = tracker.features()[0]
    expected = ks_2samp(window[:, 0], reference.sketch[:, 0], method="asymp")
    assert first.ks_statistic == pytest.approx(expected.statistic)
    assert first.ks_pvalue == pytest.approx(expected.pvalue)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_difference() -> None:
    even = np.full((1, 4), 0.25)
    assert population_stability_index(even, even)[0] == 0.0
    small = population_stability_index(np.array([[0.3, 0.2, 0.25, 0.25]]), even)[0]
    large = population_stability_index(np.array([[0.7, 0.1, 0.1, 0.1]]), even)[0]
    assert 0 < small < large
    empty_bin = population_stability_index(np.array([[0.0, 0.5, 0.25, 0.25]]), even)[0]
    assert np.isfinite(empty_bin)


def test_too_few_rows_never_drift(reference: DriftReference) -> None:
    tracker = DriftTracker(reference, window_rows=100, thresholds=DriftThresholds(min_rows=50))
    tracker.update(np.full((49, 3), 5.0))
    assert not any(f.drifted for f in tracker.features())
    tracker.update(np.full((1, 3), 5.0))
    assert all(f.drifted for f in tracker.features())


def test_report_is_json_with_every_feature(reference: DriftReference) -> None:
    tracker = DriftTracker(reference, window_rows=50, thresholds=DriftThresholds(min_rows=10))
    empty = tracker.report()
    assert empty["rows_held"] == 0
    assert [f["psi"] for f in empty["features"]] == [None, None, None]
    tracker.update(np.full((20, 3), 10.0))
    report = json.loads(json.dumps(tracker.report()))
    assert report["drifted"] is True
    assert report["enough_rows"] is True
    assert report["reference"]["sketch_rows"] == 1000
    for feature, name in zip(report["features"], NAMES, strict=True):
        assert feature["feature"] == name
        assert set(feature) == {
            "feature",
            "psi",
            "ks_statistic",
            "ks_pvalue",
            "drifted",
            "window_rows",
            "rows_held",
        }
        assert (feature["window_rows"], feature["rows_held"]) == (50, 20)
        assert feature["ks_statistic"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"psi": 0.0}, "psi"),
        ({"psi": float("nan")}, "psi"),
        ({"ks_statistic": 1.5}, "ks_statistic"),
        ({"ks_pvalue": 1.0}, "ks_pvalue"),
        ({"min_rows": 0}, "min_rows"),
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftThresholds(**kwargs)  # type: ignore[arg-type]


def test_window_must_hold_two_rows(reference: DriftReference) -> None:
    with pytest.raises(ValueError, match="window_rows"):
        DriftTracker(reference, window_rows=1)


@pytest.mark.parametrize("flush_rows", [1, 2, 3, 64])
def test_pending_rows_are_flushed_in_order_whatever_the_batch_size(
    reference: DriftReference, flush_rows: int
) -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(40, 3))
    tracker = DriftTracker(reference, window_rows=7, flush_rows=flush_rows)
    start = 0
    for size in (1, 1, 2, 5, 1, 9, 3, 1, 1, 8, 2, 6):
        tracker.update(rows[start : start + size], check_finite=False)
        start += size
        assert tracker.rows_held == min(7, start)
        np.testing.assert_array_equal(tracker.window(), rows[max(0, start - 7) : start])


def test_pending_rows_are_copies(reference: DriftReference) -> None:
    tracker = DriftTracker(reference, window_rows=10, flush_rows=64)
    row = np.ones((1, 3))
    tracker.update(row)
    row[0, 0] = 99.0
    np.testing.assert_array_equal(tracker.window(), np.ones((1, 3)))


def test_flush_rows_must_be_positive(reference: DriftReference) -> None:
    with pytest.raises(ValueError, match="flush_rows"):
        DriftTracker(reference, flush_rows=0)
