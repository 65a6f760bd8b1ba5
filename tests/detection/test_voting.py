"""The vote and the score/confidence combiners, as pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detection.voting import confidence_from_score, kth_largest


def test_kth_largest_sign_is_the_vote() -> None:
    rng = np.random.default_rng(0)
    margins = rng.normal(size=(500, 3))
    for k in (1, 2, 3):
        assert np.array_equal(kth_largest(margins, k) > 0, (margins > 0).sum(axis=1) >= k)
    assert kth_largest(np.array([[3.0, -1.0, 2.0]]), 2).tolist() == [2.0]


def test_kth_largest_is_monotone_in_every_margin() -> None:
    rng = np.random.default_rng(1)
    margins = rng.normal(size=(200, 3))
    base = kth_largest(margins, 2)
    for column in range(3):
        bumped = margins.copy()
        bumped[:, column] += rng.uniform(0.0, 2.0, size=200)
        assert np.all(kth_largest(bumped, 2) >= base)


def test_kth_largest_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        kth_largest(np.zeros((2, 3)), 4)


def test_confidence_is_half_on_the_boundary_and_grows_away_from_it() -> None:
    scores = np.array([-5.0, -1.0, 0.0, 1.0, 5.0])
    confidence = confidence_from_score(scores)
    assert confidence[2] == 0.5
    assert confidence[0] == confidence[4]
    assert confidence[3] < confidence[4] < 1.0
    grid = np.linspace(0.0, 20.0, 201)
    assert np.all(np.diff(confidence_from_score(grid)) >= 0)
    assert np.all((confidence_from_score(-grid) >= 0.5) & (confidence_from_score(-grid) <= 1.0))
