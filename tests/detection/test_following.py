"""The ``follow`` feature: the followed level and spread, the model option, old models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.typing import NDArray

from anomaly_api.detection.following import (
    FOLLOW_SPREAD,
    Followed,
    check_follow_memory,
    follow_alpha,
    follow_newest,
    follow_rows,
    follow_start,
)
from anomaly_api.detection.time_aware import TimeAwareModel


def _readings(n: int = 3000, channels: int = 3, seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, channels)) * np.array([1.0, 5.0, 0.2])[:channels]
    X[:, -1] += X[:, 0]
    return X


def test_the_followed_level_and_spread_are_exponentially_weighted_means() -> None:
    """Against the closed form of an EW mean: m_n = (1-a)^n m_0 + sum_k a (1-a)^(n-k) x_k,
    and d the same of |x_k - m_(k-1)|; g is each reading against the state before it."""
    X = _readings(400)
    start = follow_start(X[:100])
    np.testing.assert_allclose(start.level, np.median(X[:100], axis=0))
    alpha = follow_alpha(50)
    assert alpha == pytest.approx(2 / 51)
    floor = np.full(3, 1e-9)
    g, after = follow_rows(X[100:], start, alpha, floor)
    m = np.array(start.level)
    d = np.array(start.deviation)
    levels, deviations = [m], [d]
    for x in X[100:]:
        deviations.append(deviations[-1] * (1 - alpha) + alpha * np.abs(x - levels[-1]))
        levels.append(levels[-1] * (1 - alpha) + alpha * x)
    weights = alpha * (1 - alpha) ** np.arange(len(X) - 101, -1, -1)
    closed = (1 - alpha) ** (len(X) - 100) * m + weights @ X[100:]
    np.testing.assert_allclose(after.level, closed, rtol=1e-10)
    np.testing.assert_allclose(after.level, levels[-1], rtol=1e-10)
    np.testing.assert_allclose(after.deviation, deviations[-1], rtol=1e-10)
    expected = (X[100:] - np.array(levels[:-1])) / (FOLLOW_SPREAD * np.array(deviations[:-1]))
    np.testing.assert_allclose(g, expected, rtol=1e-9)


def test_every_way_of_following_gives_the_same_bits() -> None:
    """Many channels as arrays, one channel as floats, one reading at a time: same bits."""
    X = _readings(500)
    start = follow_start(X[:200])
    alpha, floor = follow_alpha(30), np.array([0.5, 0.1, 0.05])
    g, after = follow_rows(X, start, alpha, floor)
    state = start
    for i, row in enumerate(X.tolist()):
        one, state = follow_newest(row, state, alpha, floor.tolist())
        assert np.array(one).tobytes() == g[i].tobytes()
    assert state == after
    for c in range(3):
        single = Followed((start.level[c],), (start.deviation[c],))
        g1, after1 = follow_rows(X[:, [c]], single, alpha, floor[[c]])
        assert g1[:, 0].tobytes() == g[:, c].tobytes()
        assert (after1.level[0], after1.deviation[0]) == (after.level[c], after.deviation[c])


def test_a_deviation_never_falls_below_its_floor() -> None:
    constant = np.zeros((50, 1))
    g, after = follow_rows(constant, Followed((0.0,), (0.0,)), 0.1, np.array([0.25]))
    assert (g == 0).all()
    assert after.deviation == (0.0,)
    g, _ = follow_newest([1.0], after, 0.1, [0.25])
    assert g == [1.0 / (FOLLOW_SPREAD * 0.25)]


@pytest.mark.parametrize("memory", [-1, 2.5, True, "500"])
def test_a_memory_that_is_not_a_count_is_refused(memory: object) -> None:
    with pytest.raises(ValueError, match="follow memory"):
        check_follow_memory(memory)
    with pytest.raises(ValueError, match="follow memory"):
        TimeAwareModel(window=10, follow_memory=memory).fit(_readings(300))  # type: ignore[arg-type]


def test_the_model_adds_one_follow_feature_per_channel_with_its_words() -> None:
    X = _readings(2000)
    model = TimeAwareModel(window=20, follow_memory=100).fit(X[:1500])
    assert model.kinds_[-1] == "follow"
    assert [n for n in model.feature_names_ if n.endswith(":follow")] == [
        "x0:follow",
        "x1:follow",
        "x2:follow",
    ]
    followed = np.array([k == "follow" for k in model.kinds_] * 3)
    assert (model.feature_center_[followed] == 0).all()
    assert (model.feature_scale_[followed] >= 1).all()
    # one channel climbing slowly far off its training level: its window features move
    # with it, its followed level (memory 100) lags behind it
    rng = np.random.default_rng(5)
    one = rng.normal(size=(2000, 1))
    single = TimeAwareModel(window=20, follow_memory=100).fit(one[:1500])
    climbed = one.copy()
    climbed[1500:, 0] += np.linspace(0.0, 60.0, 500)
    ts = np.arange(2000.0)
    out = single.score_window(ts[1400:], climbed[1400:], last=None)
    assert out.is_anomaly[100:].any()
    rows = np.flatnonzero(np.argmax(out.deviations[:, 0, :], axis=1) == len(single.kinds_) - 1)
    assert len(rows) > 50  # the followed level lags the climb: g is the largest feature
    for row in rows[-3:].tolist():
        why = out.contributions(row)["x0"]["why"]
        assert why.startswith("reading ")
        assert why.endswith(" sd above its level over the last ~100 readings")
    assert out.deviations.shape == (len(out.anomaly_score), 1, len(single.kinds_))
    state = out.follow
    assert state is not None
    assert state.level[0] > 40
    Y = X.copy()
    with pytest.raises(ValueError, match="followed state holds 3"):
        model.score_window(ts[:30], Y[:30], follow=Followed((0.0,), (1.0,)))
    with pytest.raises(ValueError, match="must be finite"):
        model.score_window(ts[:30], Y[:30], follow=Followed((0.0,) * 3, (np.nan,) * 3))


def test_a_model_without_the_option_scores_as_before_and_old_pickles_load() -> None:
    """``follow_memory=0`` has none of it; a model pickled before the option existed (no
    ``follow_*`` attributes) loads with it off and scores the same bits."""
    X = _readings(2000)
    model = TimeAwareModel(window=20).fit(X[:1500])
    assert model.follow_memory == 0
    assert "follow" not in model.kinds_
    state = model.__getstate__()
    for name in ("follow_memory", "follow_start_", "follow_floor_"):
        del state[name]
    old = TimeAwareModel.__new__(TimeAwareModel)
    old.__setstate__(state)
    assert old.get_params()["follow_memory"] == 0
    ts = np.arange(2000.0)
    new, was = model.score_window(ts, X, last=None), old.score_window(ts, X, last=None)
    assert new.anomaly_score.tobytes() == was.anomaly_score.tobytes()
    assert new.follow is None
    assert was.follow is None
    again = pickle.loads(pickle.dumps(old))
    assert (
        again.score_frame(X).anomaly_score.tobytes() == model.score_frame(X).anomaly_score.tobytes()
    )


def test_the_fit_is_deterministic() -> None:
    X = _readings(1500)
    a = TimeAwareModel(window=20, follow_memory=200).fit(X)
    b = TimeAwareModel(window=20, follow_memory=200).fit(X)
    assert a.follow_start_ == b.follow_start_
    assert a.feature_scale_.tobytes() == b.feature_scale_.tobytes()
    assert a.detector_.offsets_.tobytes() == b.detector_.offsets_.tobytes()


def test_not_learning_judges_every_reading_against_the_given_state() -> None:
    """``learn=False``: the state stays as given (the training one by default), on the
    one-reading path and the general one alike."""
    X = _readings(1600)
    model = TimeAwareModel(window=20, follow_memory=50).fit(X[:1200])
    ts = np.arange(1600.0)
    window = slice(1500, 1520)
    one = model.score_window(ts[window], X[window], learn=False)
    every = model.score_window(ts[window], X[window], last=None, learn=False)
    assert one.anomaly_score.tobytes() == every.anomaly_score[-1:].tobytes()
    assert one.follow == every.follow == model.follow_start_
    learning = model.score_window(ts[window], X[window])
    assert learning.follow != model.follow_start_
