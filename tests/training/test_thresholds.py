"""Threshold tuning on validation scores (lower score = more abnormal)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from anomaly_api.training.thresholds import (
    best_f1_threshold,
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
