"""The behaviour both stream stores share, run against process memory and the shared Redis."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.service.streams import (
    InvalidReadingsError,
    InvalidStreamIdError,
    StreamOrderError,
    StreamStore,
    StreamWindow,
)

F = 8  # channels
T0 = 1_764_400_000.0  # epoch seconds, late 2025


def readings(start: int, n: int, f: int = F) -> tuple[list[float], np.ndarray]:
    """``n`` readings at 5-minute steps from step ``start``; value = step * 10 + channel."""
    steps = np.arange(start, start + n, dtype=np.float64)
    values = steps[:, None] * 10 + np.arange(f)[None, :]
    return (T0 + 300 * steps).tolist(), values


async def test_append_returns_the_window_and_trims_it(store: StreamStore) -> None:
    first = await store.append("pump-1", *readings(0, 3), window=5, model_key="m1")
    assert first.new_stream
    assert not first.model_changed
    assert first.restarted
    assert len(first) == 3
    assert first.total == 3

    second = await store.append("pump-1", *readings(3, 4), window=5, model_key="m1")
    assert not second.restarted
    assert second.total == 7
    expected_ts, expected_values = readings(2, 5)  # the last 5 of 0..6
    np.testing.assert_array_equal(second.timestamps, expected_ts)
    np.testing.assert_array_equal(second.values, expected_values)
    assert second.values.flags.c_contiguous
    assert not second.values.flags.writeable

    state = await store.get("pump-1")
    assert state is not None
    assert (state.total, state.window_length, state.n_features) == (7, 5, F)
    assert state.first_timestamp == T0
    assert state.last_timestamp == T0 + 300 * 6
    assert state.model_key == "m1"
    assert 0 < state.expires_in_s <= 600


async def test_one_reading_at_a_time_keeps_the_last_window(store: StreamStore) -> None:
    window: StreamWindow | None = None
    for step in range(70):
        window = await store.append("s", *readings(step, 1), window=60, model_key="m")
    assert window is not None
    assert window.total == 70
    np.testing.assert_array_equal(window.timestamps, readings(10, 60)[0])


async def test_values_and_timestamps_are_kept_bit_for_bit(store: StreamStore) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(scale=1e6, size=(20, F)) * rng.choice([1e-300, 1.0, 1e300], size=(20, F))
    values[0, 0], values[1, 1], values[2, 2] = -0.0, 5e-324, np.nextafter(1.0, 2.0)
    timestamps = np.sort(T0 + rng.uniform(0, 1e5, size=20))  # sub-microsecond fractions
    window = await store.append("exact", timestamps, values, window=20, model_key="m")
    assert window.timestamps.tobytes() == timestamps.tobytes()
    assert window.values.tobytes() == values.tobytes()


@pytest.mark.parametrize(
    ("timestamps", "index"),
    [
        ([T0 + 300 * 4], 0),  # duplicate of the last stored one
        ([T0 + 300 * 2], 0),  # earlier than the last stored one
        ([T0 + 300 * 5, T0 + 300 * 5], 1),  # duplicate inside the call
        ([T0 + 300 * 6, T0 + 300 * 5], 1),  # out of order inside the call
    ],
)
async def test_out_of_order_or_duplicate_changes_nothing(
    store: StreamStore, timestamps: list[float], index: int
) -> None:
    await store.append("s", *readings(0, 5), window=10, model_key="m")
    before = await store.get("s")
    values = np.full((len(timestamps), F), 99.0)
    with pytest.raises(StreamOrderError) as caught:
        await store.append("s", timestamps, values, window=10, model_key="m")
    assert caught.value.timestamp == timestamps[index]
    assert caught.value.index == index
    assert "nothing was appended" in str(caught.value)

    after = await store.get("s")
    assert before is not None
    assert after is not None
    assert (after.total, after.window_length, after.last_timestamp) == (
        before.total,
        before.window_length,
        before.last_timestamp,
    )
    following = await store.append("s", *readings(5, 1), window=10, model_key="m")
    np.testing.assert_array_equal(following.timestamps, readings(0, 6)[0])
    assert 99.0 not in following.values


async def test_order_error_names_the_last_timestamp(store: StreamStore) -> None:
    await store.append("s", *readings(0, 2), window=10, model_key="m")
    with pytest.raises(StreamOrderError) as caught:
        await store.append("s", *readings(1, 1), window=10, model_key="m")
    assert caught.value.previous == T0 + 300
    assert "duplicate timestamp" in str(caught.value)


@pytest.mark.parametrize(
    "stream_id",
    ["", "-starts-with-dash", "has space", "a/b", "x" * 129, "ünïcode", "a\n", "{tag}"],
)
async def test_invalid_stream_ids_are_refused(store: StreamStore, stream_id: str) -> None:
    with pytest.raises(InvalidStreamIdError):
        await store.append(stream_id, *readings(0, 1), window=5, model_key="m")
    with pytest.raises(InvalidStreamIdError):
        await store.get(stream_id)
    with pytest.raises(InvalidStreamIdError):
        await store.delete(stream_id)


@pytest.mark.parametrize("stream_id", ["a", "A" * 128, "plant-3:line.7_pump-12", "0"])
async def test_valid_stream_ids_are_accepted(store: StreamStore, stream_id: str) -> None:
    window = await store.append(stream_id, *readings(0, 1), window=5, model_key="m")
    assert window.stream_id == stream_id
    assert await store.get(stream_id) is not None


@pytest.mark.parametrize(
    ("timestamps", "rows"),
    [
        ([T0], np.full((1, F), np.nan)),
        ([T0], np.full((1, F), np.inf)),
        ([float("nan")], np.zeros((1, F))),
        ([T0, T0 + 1], np.zeros((1, F))),  # counts differ
        ([T0], np.zeros(F)),  # 1-D rows
        ([], np.zeros((0, F))),  # nothing
        ([T0], [["a"] * F]),  # not numbers
    ],
)
async def test_bad_readings_are_refused_and_change_nothing(
    store: StreamStore, timestamps: list[float], rows: object
) -> None:
    await store.append("s", [T0 - 1], np.ones((1, F)), window=5, model_key="m")
    with pytest.raises(InvalidReadingsError):
        await store.append("s", timestamps, rows, window=5, model_key="m")  # type: ignore[arg-type]
    state = await store.get("s")
    assert state is not None
    assert (state.total, state.last_timestamp) == (1, T0 - 1)


async def test_feature_count_must_match_under_the_same_model_key(store: StreamStore) -> None:
    await store.append("s", *readings(0, 2), window=5, model_key="m")
    with pytest.raises(InvalidReadingsError, match="8 features"):
        await store.append("s", *readings(2, 1, f=4), window=5, model_key="m")
    state = await store.get("s")
    assert state is not None
    assert (state.total, state.n_features) == (2, F)


async def test_a_new_model_key_restarts_the_window_with_a_flag(store: StreamStore) -> None:
    await store.append("s", *readings(0, 4), window=5, model_key="v1")
    # The new model has other features; even an earlier timestamp is fine on a new window.
    window = await store.append("s", *readings(1, 2, f=3), window=5, model_key="v2")
    assert window.model_changed
    assert not window.new_stream
    assert window.restarted
    assert window.total == 2
    assert window.values.shape == (2, 3)
    state = await store.get("s")
    assert state is not None
    assert (state.model_key, state.first_timestamp) == ("v2", T0 + 300)
    again = await store.append("s", *readings(3, 1, f=3), window=5, model_key="v2")
    assert not again.restarted


async def test_delete_resets_the_stream(store: StreamStore) -> None:
    await store.append("s", *readings(0, 3), window=5, model_key="m")
    assert await store.delete("s")
    assert await store.get("s") is None
    assert not await store.delete("s")
    window = await store.append("s", *readings(0, 1), window=5, model_key="m")
    assert window.new_stream
    assert window.total == 1


async def test_unknown_stream_has_no_state(store: StreamStore) -> None:
    assert await store.get("never-seen") is None


async def test_window_outside_the_limit_is_a_programming_error(store: StreamStore) -> None:
    for window in (0, 1025):
        with pytest.raises(ValueError, match="window"):
            await store.append("s", *readings(0, 1), window=window, model_key="m")
    with pytest.raises(ValueError, match="model_key"):
        await store.append("s", *readings(0, 1), window=5, model_key="")
    assert await store.get("s") is None


async def test_streams_are_independent(store: StreamStore) -> None:
    await store.append("a", *readings(0, 3), window=5, model_key="m")
    await store.append("b", *readings(0, 1), window=5, model_key="m")
    a, b = await store.get("a"), await store.get("b")
    assert a is not None
    assert b is not None
    assert (a.total, b.total) == (3, 1)
    assert await store.live_count() == 2
    assert await store.check()
    assert not store.degraded
