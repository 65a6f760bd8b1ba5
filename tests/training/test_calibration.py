"""Thresholds calibrated for a false-alarm rate on later normal data, and their statement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta, binomtest, norm

from anomaly_api.data.errors import DataError
from anomaly_api.data.loading import Dataset, synthetic_dataset
from anomaly_api.data.timeseries import TimeSeriesDataset, timeseries_from_frame
from anomaly_api.training.calibration import (
    calibrate,
    counted_statement,
    decision_scores,
    largest_safe_rank,
    readings_needed,
    stated,
)
from anomaly_api.training.pipeline import fit_and_evaluate
from anomaly_api.training.time_aware import TimeAwareSettings, fit_time_aware, full_windows


@pytest.fixture(scope="module")
def tiny_labelled() -> Dataset:
    return synthetic_dataset(seed=3, n_rows=2_000)


@dataclass
class Member:
    """Thresholds of a detector, as ``calibrate`` reads them."""

    offsets_: np.ndarray
    scales_: np.ndarray
    min_votes: int = 1


ONE = Member(np.zeros(1), np.ones(1))
"""A single member with threshold 0 and scale 1: its decision score is -score."""


def test_the_cut_is_the_plain_order_statistic() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(size=1_000)
    k = largest_safe_rank(1_000, 0.02)
    # the k-th smallest score (lower = more abnormal), computed plainly with numpy
    expected_threshold = np.sort(normal)[k - 1]
    result = calibrate(ONE, normal[:, None], 0.02)
    assert result.offsets[0] == pytest.approx(expected_threshold)
    # it flags k - 1 of the calibration readings: those strictly below it
    assert int(np.sum(normal < result.offsets[0])) == k - 1
    # and is stricter than the plain 2% quantile the threshold used to be
    assert result.offsets[0] < np.quantile(normal, 0.02)
    s = result.statement
    assert s["target"] == 0.02
    assert s["n_calibration"] == 1_000
    assert s["flagged"] == k - 1
    assert s["expected"] == pytest.approx(k / 1_001)
    assert s["expected"] < s["upper_95"] <= 0.02


def test_the_rank_is_the_largest_whose_beta_quantile_meets_the_target() -> None:
    for n, target in ((1_000, 0.02), (500, 0.05), (2_000, 0.01)):
        k = largest_safe_rank(n, target)
        assert beta.ppf(0.95, k, n + 1 - k) <= target < beta.ppf(0.95, k + 1, n - k)


def test_too_few_readings_take_the_most_extreme_and_say_so() -> None:
    assert readings_needed(0.02) == 149
    assert largest_safe_rank(100, 0.02) == 0
    assert largest_safe_rank(149, 0.02) == 1
    normal = np.random.default_rng(1).normal(size=100)
    result = calibrate(ONE, normal[:, None], 0.02)
    assert result.offsets[0] == pytest.approx(normal.min())
    assert result.statement["flagged"] == 0
    assert result.statement["upper_95"] > 0.02  # honest: the bound misses the target
    assert "needs 149" in result.statement["method"]


def test_a_vote_is_calibrated_as_one_number() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(3_000, 3))
    offsets, scales = np.array([-1.0, -1.5, -2.0]), np.array([1.0, 2.0, 0.5])
    result = calibrate(Member(offsets, scales, 2), scores, 0.01)
    new = result.offsets
    # the same shift of every member in its own units
    shift = (offsets - new) / scales
    assert np.allclose(shift, shift[0])
    # the 2-of-3 vote at the new thresholds flags exactly the readings counted
    flagged = ((scores < new).sum(axis=1) >= 2).sum()
    assert flagged == result.statement["flagged"]
    assert np.array_equal(decision_scores(scores, new, scales, 2) > 0, (scores < new).sum(1) >= 2)


def test_the_bound_covers_the_rate_on_later_normal_readings() -> None:
    """Over many calibrations on i.i.d. normal scores, the realised false-alarm rate
    exceeds the target in at most 5% of them (a binomial test, seeded)."""
    rng = np.random.default_rng(20261207)
    target, n, trials = 0.02, 400, 600
    exceeded = 0
    for _ in range(trials):
        cut = calibrate(ONE, rng.standard_normal((n, 1)), target).offsets[0]
        realised = norm.cdf(cut)  # the rate it flags of later standard-normal scores
        exceeded += realised > target
    # a bound at 95% must not be exceeded significantly more often than 5%
    assert binomtest(exceeded, trials, 0.05, alternative="greater").pvalue > 0.001
    # and it is not vacuous: a plain quantile is exceeded about half the time
    plain = sum(
        np.quantile(rng.standard_normal(n), target) > norm.ppf(target) for _ in range(trials)
    )
    assert plain > 0.3 * trials > exceeded


def test_no_normal_readings_is_a_clear_data_error() -> None:
    with pytest.raises(DataError, match="without normal readings"):
        calibrate(ONE, np.empty((0, 1)), 0.02)


def test_counted_statement_is_a_clopper_pearson_bound() -> None:
    scores = np.arange(100, dtype=np.float64)[:, None]
    s = counted_statement(Member(np.array([5.0]), np.ones(1)), scores, None, "rows")
    assert s["flagged"] == 5
    assert s["n_calibration"] == 100
    assert s["target"] is None
    assert s["upper_95"] == pytest.approx(beta.ppf(0.95, 6, 95))


def test_models_without_a_statement_report_unknown() -> None:
    assert stated(None)["method"] == "unknown"
    assert stated({"threshold_objective": "max-f1"}) == {
        "target": None,
        "expected": None,
        "upper_95": None,
        "n_calibration": None,
        "flagged": None,
        "method": "unknown",
    }
    kept = {"target": 0.02, "expected": 0.01, "method": "m"}
    assert stated({"false_alarm_rate": kept})["expected"] == 0.01


def _unlabelled(series: TimeSeriesDataset, rows: int) -> TimeSeriesDataset:
    frame = pd.DataFrame(series.data.X[:rows], columns=series.data.feature_names)
    frame["timestamp"] = series.timestamps[:rows]
    return timeseries_from_frame(frame, source="test", timestamp_column="timestamp")


def test_unlabelled_time_aware_thresholds_are_the_bound_on_the_last_part(
    ta_series: TimeSeriesDataset,
) -> None:
    ts = _unlabelled(ta_series, 3_000)
    trained = fit_time_aware(ts, TimeAwareSettings(window=30, target_fpr=0.02))
    model = trained.model
    _, z, valid = model.window_z(ts.data.X, ts.segments)
    held_out = model.detector_scores(z[(trained.parts == 1) & valid])[:, 0]
    n = len(held_out)
    k = largest_safe_rank(n, 0.02)
    # top4_z is one member: its threshold is the k-th smallest held-out score
    assert float(model.detector_.offsets_[0]) == pytest.approx(np.sort(held_out)[k - 1])
    stated = trained.metrics["false_alarm_rate"]
    assert stated["n_calibration"] == n
    assert stated["flagged"] == k - 1
    assert stated["target"] == 0.02
    assert stated["upper_95"] <= 0.02
    # warming-up readings (the point-wise fallback) are held to the bound too
    point = model.pointwise_
    raw = point.detector_scores(model.scale(ts.data.X[trained.parts == 1]))
    flagged = point.combine(raw).is_anomaly
    assert flagged.mean() <= 0.02


def test_unlabelled_point_wise_target_fpr_calibrates_on_the_last_rows() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1_000, 3))
    dataset = Dataset(X=X, feature_names=["a", "b", "c"], y=None, kinds=None, source="t")
    trained = fit_and_evaluate(dataset, target_fpr=0.05)
    assert trained.X_fit.shape == (800, 3)
    stated = trained.metrics["false_alarm_rate"]
    assert stated["n_calibration"] == 200
    assert stated["upper_95"] <= 0.05
    assert trained.metrics["split"] == {"kind": "chronological", "fit": 800, "calibration": 200}
    flagged = trained.model.predict(X[800:]) == -1
    assert int(flagged.sum()) == stated["flagged"]
    # without a target: contamination, stated as counted in-sample
    plain = fit_and_evaluate(dataset)
    assert "in-sample" in plain.metrics["false_alarm_rate"]["method"]


def test_labelled_point_wise_states_its_rate(tiny_labelled: Dataset) -> None:
    trained = fit_and_evaluate(tiny_labelled, target_fpr=0.05)
    stated = trained.metrics["false_alarm_rate"]
    assert stated["target"] == 0.05
    assert stated["upper_95"] <= 0.05
    assert "normal validation rows" in stated["method"]
    assert trained.metrics["test"]["detectors"]["ensemble"]["fpr"] < 0.1


def _gapped(n_before: int, n_after: int) -> TimeSeriesDataset:
    """Readings a minute apart, a 10-hour gap, then ``n_after`` more: the last 20% of the
    time span holds only the readings after the gap."""
    rng = np.random.default_rng(7)
    seconds = np.concatenate(
        [60.0 * np.arange(n_before), 60.0 * n_before + 36_000 + 60.0 * np.arange(n_after)]
    )
    frame = pd.DataFrame(rng.normal(size=(n_before + n_after, 3)), columns=["a", "b", "c"])
    frame["timestamp"] = 1.7e9 + seconds
    return timeseries_from_frame(frame, source="t", timestamp_column="timestamp")


def test_full_windows_are_the_rows_the_model_scores_from_a_window() -> None:
    ts = _gapped(320, 40)
    trained = fit_time_aware(ts, TimeAwareSettings(window=30))
    _, _, valid = trained.model.window_z(ts.data.X, ts.segments)
    np.testing.assert_array_equal(full_windows(ts.segments, 30), valid)


def test_gaps_without_a_held_out_window_calibrate_on_the_last_full_windows() -> None:
    """The last 20% of the time span (20 readings after a gap) has no full window of 30:
    the split counts readings with a full window instead, and says so."""
    ts = _gapped(320, 20)
    said: list[str] = []
    trained = fit_time_aware(ts, TimeAwareSettings(window=30), progress=said.append)
    full = full_windows(ts.segments, 30)
    assert int(full.sum()) == 291  # 320 - 29; none after the gap
    calibration = (trained.parts == 1) & full
    assert int(calibration.sum()) == 58  # the last 20% of the 291
    assert not calibration[320:].any()
    assert trained.metrics["false_alarm_rate"]["n_calibration"] == 58
    assert trained.metrics["split"]["kind"] == "chronological, counted in full windows"
    assert any("no full window in the last 20%" in line for line in said)
    # too few full windows for both parts: a clear error still
    with pytest.raises(DataError, match="only 3 full windows of normal readings to fit on"):
        fit_time_aware(_gapped(32, 20), TimeAwareSettings(window=30))
