"""The robust z-score detector on its own."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from anomaly_api.detection import ZScoreDetector
from anomaly_api.detection.scaling import MAD_TO_STD, spread_floor


def test_scale_ignores_outliers_in_training_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(loc=3.0, scale=2.0, size=(2000, 2))
    X[:50, 0] = 1e6  # 2.5% wild values must not inflate the robust scale
    detector = ZScoreDetector().fit(X)
    assert detector.center_ == pytest.approx([3.0, 3.0], abs=0.2)
    assert detector.scale_ == pytest.approx([2.0, 2.0], rel=0.1)


def test_score_is_negated_largest_robust_z() -> None:
    X = np.array([[0.0, 10.0], [1.0, 12.0], [2.0, 14.0], [3.0, 16.0], [4.0, 18.0]])
    detector = ZScoreDetector(contamination=0.2).fit(X)
    # medians 2 and 14, MADs 1 and 2
    assert detector.scale_ == pytest.approx([MAD_TO_STD, 2 * MAD_TO_STD])
    score = detector.score_samples(np.array([[2.0 + 3 * MAD_TO_STD, 14.0]]))
    assert score == pytest.approx([-3.0])


def test_predict_flags_extreme_rows_and_contamination_sets_offset() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 3))
    detector = ZScoreDetector(contamination=0.1).fit(X)
    assert (detector.predict(X) == -1).mean() == pytest.approx(0.1, abs=0.01)
    assert detector.predict(np.array([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0]])).tolist() == [1, -1]
    decision = detector.decision_function(X)
    assert np.array_equal(decision < 0, detector.predict(X) == -1)


def test_constant_feature_gets_the_spread_floor() -> None:
    X = np.column_stack([np.arange(10.0), np.ones(10)])
    detector = ZScoreDetector().fit(X)
    assert detector.scale_[1] == spread_floor(np.array([1.0]))[0]
    scores = detector.score_samples(np.array([[4.5, 1.0], [4.5, 1.01]]))
    assert scores[0] == pytest.approx(0.0, abs=0.1)  # at the constant: no deviation
    assert scores[1] < -1000.0  # any move of it is far out


def test_zero_mad_falls_back_to_standard_deviation() -> None:
    X = np.zeros((20, 1))
    X[:3, 0] = [1.0, 2.0, 3.0]  # median and MAD are 0
    detector = ZScoreDetector().fit(X)
    assert detector.scale_[0] == pytest.approx(X[:, 0].std())


def test_unfitted_and_wrong_width_are_refused() -> None:
    with pytest.raises(NotFittedError):
        ZScoreDetector().score_samples(np.zeros((1, 2)))
    detector = ZScoreDetector().fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ValueError, match="features"):
        detector.score_samples(np.zeros((1, 3)))
