"""Threshold tuning on validation scores (lower score = more abnormal)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from anomaly_api.detection.scaling import MAD_TO_STD
from anomaly_api.training.thresholds import (
    best_f1_threshold,
    floored_f1_threshold,
    normal_floor_threshold,
    target_fpr_threshold,
    tune_thresholds,
)


def test_separable_scores_get_a_threshold_between_the_classes() -> None:
    scores = np.array([-9.0, -8.0, -1.0, 0.0, 1.0, 2.0])
    y = np.array([1, 1, 0, 0, 0, 0])
    assert best_f1_threshold(scores, y) == pytest.approx(-4.5)


def test_best_f1_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=300) < 0.1).astype(np.int64)
    scores = rng.normal(size=300) - 1.5 * y
    threshold = best_f1_threshold(scores, y)
    best = max(f1_score(y, scores < t) for t in np.append(scores, scores.max() + 1))
    assert f1_score(y, scores < threshold) == pytest.approx(best)


def test_tied_scores_stay_on_one_side() -> None:
    scores = np.array([-1.0, -1.0, -1.0, 0.0])
    y = np.array([1, 0, 0, 0])
    threshold = best_f1_threshold(scores, y)
    flagged = scores < threshold
    assert flagged[:3].all() or not flagged[:3].any()


def test_target_fpr_flags_that_share_of_normal_rows() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=1000)
    y = np.zeros(1000, dtype=np.int64)
    threshold = target_fpr_threshold(scores, y, 0.02)
    assert (scores < threshold).sum() == 20
    with pytest.raises(ValueError, match="false-positive rate"):
        target_fpr_threshold(scores, y, 1.5)


def test_tune_thresholds_gives_one_per_detector() -> None:
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=200) < 0.1).astype(np.int64)
    scores = rng.normal(size=(200, 3)) - 2.0 * y[:, None]
    assert tune_thresholds(scores, y).shape == (3,)
    by_fpr = tune_thresholds(scores, y, target_fpr=0.05)
    assert np.all((scores[y == 0] < by_fpr).mean(axis=0) <= 0.05)


def test_f1_needs_anomalies() -> None:
    with pytest.raises(ValueError, match="without anomalous rows"):
        best_f1_threshold(np.zeros(5), np.zeros(5, dtype=np.int64))


def _overlapping(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """2,000 normal scores ~ N(0, 1) and 100 anomalies whose scores reach into them."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(size=2000), rng.normal(-3.0, 1.0, size=100)])
    y = np.concatenate([np.zeros(2000, dtype=np.int64), np.ones(100, dtype=np.int64)])
    return scores, y


def test_normal_floor_is_median_minus_k_robust_sd_of_the_normal_rows() -> None:
    scores = np.array([-50.0, -40.0, 0.0, 1.0, 2.0, 4.0, 10.0])
    y = np.array([1, 1, 0, 0, 0, 0, 0])
    # normal rows 0, 1, 2, 4, 10: median 2, MAD median(2, 1, 0, 2, 8) = 2
    assert normal_floor_threshold(scores, y, 3.0) == pytest.approx(2.0 - 3.0 * MAD_TO_STD * 2.0)
    with pytest.raises(ValueError, match="positive"):
        normal_floor_threshold(scores, y, 0.0)
    with pytest.raises(ValueError, match="without normal rows"):
        normal_floor_threshold(scores, np.ones(7, dtype=np.int64), 3.0)


def test_floor_caps_the_share_of_validation_normals_flagged() -> None:
    scores, y = _overlapping()
    normal = scores[y == 0]
    loose = float((normal < best_f1_threshold(scores, y)).mean())
    floored = floored_f1_threshold(scores, y, 4.0)
    # max F1 cuts into the normal tail here; 4 sd below the median of N(0, 1) flags
    # (next to) none of 2,000 normal rows
    assert loose > 0.005
    assert float((normal < floored).mean()) <= 0.001
    assert floored == pytest.approx(normal_floor_threshold(scores, y, 4.0))


def test_floor_leaves_a_stricter_max_f1_threshold_alone() -> None:
    rng = np.random.default_rng(4)
    scores = np.concatenate([rng.normal(size=500), rng.normal(-20.0, 0.5, size=20)])
    y = np.concatenate([np.zeros(500, dtype=np.int64), np.ones(20, dtype=np.int64)])
    best = best_f1_threshold(scores, y)
    assert best < normal_floor_threshold(scores, y, 4.5)
    assert floored_f1_threshold(scores, y, 4.5) == best


def test_floor_does_not_follow_a_few_extreme_normal_rows() -> None:
    scores, y = _overlapping()
    before = normal_floor_threshold(scores, y, 4.5)
    # three normal rows far out in the tail move an empirical quantile, not the floor
    extreme = np.concatenate([scores, [-30.0, -31.0, -32.0]])
    y_extreme = np.concatenate([y, np.zeros(3, dtype=np.int64)])
    assert normal_floor_threshold(extreme, y_extreme, 4.5) == pytest.approx(before, abs=0.02)
    assert target_fpr_threshold(extreme, y_extreme, 0.001) < -29.0


def test_tune_thresholds_floors_each_column_unless_a_target_fpr_is_given() -> None:
    scores, y = _overlapping()
    columns = np.column_stack([scores, 2.0 * scores])
    floored = tune_thresholds(columns, y, normal_floor=4.0)
    expected = [normal_floor_threshold(col, y, 4.0) for col in columns.T]
    assert floored == pytest.approx(expected)
    assert np.all(floored < tune_thresholds(columns, y))
    by_fpr = tune_thresholds(columns, y, target_fpr=0.02, normal_floor=4.0)
    assert by_fpr == pytest.approx(tune_thresholds(columns, y, target_fpr=0.02))
