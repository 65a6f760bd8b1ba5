"""Window features against a plain pandas rolling computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from anomaly_api.detection.windows import FEATURE_KINDS, SPREAD_EPS, window_features

W, S, L = 12, 4, 3
LAG_RELATION = np.random.default_rng(2).normal(size=(3, 3 * L))
"""A dynamic PCA's residual rows: channel c's lag-0 residual from all 3 * L lagged values."""


def _values(n: int = 200, channels: int = 3, seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(size=(n, channels)), axis=0)
    values[60:75, 1] = values[59, 1]  # a frozen channel
    values[120:123, 0] = values[119, 0]  # a short repeat
    values[150, 2] += 9.0  # a spike
    return values


def _pandas_reference(
    values: NDArray[np.float64], relation: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The same features, written the slow, obvious way with pandas rolling windows."""
    frame = pd.DataFrame(values)
    residuals = pd.DataFrame(values @ relation.T)
    # lagged vector of row t, channel-major, oldest first: x_c[t - L + 1 + j], j = 0 .. L-1
    lagged = pd.concat([frame[c].shift(L - 1 - j) for c in frame.columns for j in range(L)], axis=1)
    lag_residuals = pd.DataFrame(lagged.to_numpy() @ LAG_RELATION.T)
    columns = []
    for c in frame.columns:
        x, r, lr = frame[c], residuals[c], lag_residuals[c]
        step_zero = x.diff() == 0
        run = step_zero.astype(int).groupby((~step_zero).cumsum()).cumsum()
        per_kind = {
            "level": x - x.shift(1).rolling(W - 1).median(),
            "spread": np.log(x.diff().abs().rolling(W - 1).median() + SPREAD_EPS),
            "flat": run.clip(upper=W - 1).astype(float),
            "shift": x.rolling(S).mean() - x.shift(S).rolling(W - S).median(),
            "residual": r,
            "residual_mean": r.rolling(S).mean(),
            "lag_residual": lr,
            "lag_residual_mean": lr.rolling(S).mean(),
        }
        columns += [per_kind[kind] for kind in FEATURE_KINDS]
    reference = pd.concat(columns, axis=1).to_numpy()
    reference[: W - 1] = np.nan
    return reference


def test_features_match_pandas_rolling() -> None:
    values = _values()
    relation = np.random.default_rng(1).normal(size=(3, 3))
    features, valid = window_features(
        values,
        None,
        window=W,
        short=S,
        kinds=FEATURE_KINDS,
        residual_projector=relation,
        lags=L,
        lag_projector=LAG_RELATION,
    )
    expected = _pandas_reference(values, relation)
    assert valid.tolist() == [False] * (W - 1) + [True] * (len(values) - W + 1)
    np.testing.assert_allclose(features[valid], expected[valid], rtol=1e-9, atol=1e-9)
    assert np.isnan(features[~valid]).all()


def test_frozen_channel_is_flat_and_has_no_spread() -> None:
    values = _values()
    features, _ = window_features(values, None, window=W, short=S, kinds=("spread", "flat"))
    flat = features[:, 1 * 2 + 1]  # channel 1, "flat"
    assert flat[60] == 1
    assert flat[65] == 6
    assert flat[74] == W - 1
    assert flat[75] == 0
    spread = features[:, 1 * 2 + 0]
    assert spread[74] == pytest.approx(np.log(SPREAD_EPS))  # no steps at all
    assert spread[100] > np.log(0.05)


def test_segments_restart_the_window() -> None:
    values = _values()
    segments = np.where(np.arange(len(values)) < 90, 0, 1)
    features, valid = window_features(values, segments, window=W, short=S, kinds=("level",))
    first, _ = window_features(values[:90], None, window=W, short=S, kinds=("level",))
    second, second_valid = window_features(values[90:], None, window=W, short=S, kinds=("level",))
    np.testing.assert_array_equal(features[:90], first)
    np.testing.assert_array_equal(features[90:], second)
    assert not valid[90 : 90 + W - 1].any()
    assert valid[90 + W - 1]
    assert second_valid.sum() == len(values) - 90 - W + 1


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="window must be at least"):
        window_features(_values(), None, window=2, short=1, kinds=("level",))
    with pytest.raises(ValueError, match="short window"):
        window_features(_values(), None, window=10, short=9, kinds=("level",))
    with pytest.raises(ValueError, match="needs the relation matrix"):
        window_features(_values(), None, window=10, short=3, kinds=("residual",))
    with pytest.raises(ValueError, match=r"needs the relation matrix \(lag_projector\)"):
        window_features(_values(), None, window=10, short=3, kinds=("lag_residual",))
    with pytest.raises(ValueError, match=r"lags must be in \[1, 8\]"):
        window_features(_values(), None, window=10, short=3, lags=9, lag_projector=np.ones((3, 27)))


@pytest.mark.parametrize(("window", "short"), [(W, S), (13, 4), (60, 5), (9, 2)])
def test_newest_features_are_the_last_row_of_the_frame_bit_for_bit(window: int, short: int) -> None:
    from anomaly_api.detection.windows import newest_features

    values = _values()
    relation = np.random.default_rng(1).normal(size=(3, 3))
    options = {
        "window": window,
        "short": short,
        "residual_projector": relation,
        "lags": L,
        "lag_projector": LAG_RELATION,
    }
    frame, _ = window_features(values, None, **options)
    for end in range(window, len(values) + 1, 7):
        rows = values[end - window : end]
        expected, _ = window_features(rows, None, **options)
        newest = newest_features(rows, **options)
        assert newest.shape == (1, frame.shape[1])
        assert newest.tobytes() == expected[-1:].tobytes()
        np.testing.assert_allclose(newest[0], frame[end - 1], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="exactly"):
        newest_features(values[: window - 1], window=window, short=short)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 55, 59])
def test_median_is_numpys_median(n: int) -> None:
    from anomaly_api.detection.windows import _median

    rng = np.random.default_rng(n)
    values = rng.normal(size=(4, 3, n))
    values[0, 0, :] = 1.5  # ties
    values[1, 2, -1] = np.nan
    values[2, 1, 0] = np.inf
    values[3, 0, n // 2] = -np.inf
    expected = np.median(values, axis=-1)
    assert _median(values).tobytes() == expected.tobytes()
    strided = np.moveaxis(values, -1, 0).copy()  # the views' strides: the window not last
    assert _median(np.moveaxis(strided, 0, -1)).tobytes() == expected.tobytes()
