"""The stream helpers of both clients against a real ``anomaly-api serve`` process over the
tiny (point-wise) model: it answers every reading alone, never ``warming_up``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from anomaly_api.client import AnomalyApiError, AnomalyClient, AsyncAnomalyClient

FEATURES = [f"f{i}" for i in range(8)]
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def readings(n: int, seed: int = 0) -> list[list[float]]:
    data = np.random.default_rng(seed).normal(size=(n, 8))
    data[-1] *= 9.0  # the newest reading is a clear anomaly
    values: list[list[float]] = data.tolist()
    return values


def minutes(start: int, n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=start + i) for i in range(n)]


def test_predict_window_answers_the_last_reading_or_all(server_url: str) -> None:
    data = readings(5)
    with AnomalyClient(server_url) as client:
        last = client.predict_window(minutes(0, 5), data)
        every = client.predict_window(minutes(0, 5), data, mode="all", top_k=0)
        point = client.predict(data[-1])
    assert (last.model_kind, last.model_version) == ("point-wise", "tiny-1")
    assert [a.index for a in last.answers] == [4]
    assert [a.index for a in every.answers] == [0, 1, 2, 3, 4]
    assert not any(a.warming_up for a in every.answers)
    assert last.last.is_anomaly
    assert last.last.timestamp.startswith("2026-11-29T12:04:00")
    assert last.last.anomaly_score == pytest.approx(point.anomaly_score)
    assert every.n_anomalies == sum(a.is_anomaly for a in every.answers)


def test_a_stream_grows_resets_and_refuses_an_old_timestamp(server_url: str) -> None:
    stream = "q2-client-stream-1"
    data = readings(6, seed=1)
    by_name = [dict(zip(FEATURES, row, strict=True)) for row in data[3:]]
    with AnomalyClient(server_url) as client:
        first = client.send_readings(stream, minutes(0, 3), data[:3])
        state_1 = client.stream_state(stream)
        second = client.send_readings(
            stream, [t.isoformat() for t in minutes(3, 2)], by_name[:2], top_k=1
        )
        third = client.send_readings(stream, [minutes(5, 1)[0].timestamp()], [data[5]])
        state_2 = client.stream_state(stream)
        with pytest.raises(AnomalyApiError) as old:
            client.send_readings(stream, minutes(1, 1), [data[0]])
        state_3 = client.stream_state(stream)
        client.reset_stream(stream)
        with pytest.raises(AnomalyApiError) as gone:
            client.stream_state(stream)
    assert first.stream_id == stream
    assert first.stream.restarted
    assert [a.index for a in first.answers] == [0, 1, 2]
    assert first.model_kind == "point-wise"
    assert not first.stream.warming_up
    assert (state_1.total, state_2.total) == (3, 6)
    assert not second.stream.restarted
    assert second.stream.total == 5
    assert third.answers[0].is_anomaly
    assert state_2.first_timestamp.startswith("2026-11-29T12:00:00")
    assert state_2.last_timestamp.startswith("2026-11-29T12:05:00")
    assert state_2.n_features == 8
    assert state_2.model_version == "tiny-1"
    assert (old.value.status_code, old.value.code) == (409, "stream_order")
    assert old.value.request_id
    assert state_3.total == 6  # the refused reading left the stream as it was
    assert (gone.value.status_code, gone.value.code) == (404, "stream_not_found")


def test_bad_readings_are_a_422(server_url: str) -> None:
    with AnomalyClient(server_url) as client, pytest.raises(AnomalyApiError) as caught:
        client.send_readings("q2-client-stream-bad", minutes(0, 1), [[1.0, 2.0]])
    assert caught.value.status_code == 422


async def test_async_client_streams(server_url: str) -> None:
    stream = "q2-client-stream-async"
    data = readings(4, seed=2)
    async with AsyncAnomalyClient(server_url) as client:
        window = await client.predict_window(minutes(0, 4), data, mode="all")
        sent = await client.send_readings(stream, minutes(0, 4), data, adapt=False)
        state = await client.stream_state(stream)
        with pytest.raises(AnomalyApiError) as old:
            await client.send_readings(stream, minutes(3, 1), [data[0]])
        await client.reset_stream(stream)
        with pytest.raises(AnomalyApiError) as gone:
            await client.stream_state(stream)
    assert [a.anomaly_score for a in window.answers] == pytest.approx(
        [a.anomaly_score for a in sent.answers]
    )
    assert state.total == 4
    assert old.value.code == "stream_order"
    assert gone.value.code == "stream_not_found"


def test_stream_results_carry_the_alarm(server_url: str) -> None:
    """The server's default policy (3 anomalies within 10 readings): the third alarms."""
    stream = "q2-client-alarm:1"
    anomalous = (np.random.default_rng(2).normal(size=(4, 8)) * 9.0).tolist()
    with AnomalyClient(server_url) as client:
        sent = client.send_readings(stream, minutes(0, 4), anomalous)
        state = client.stream_state(stream)
        again = client.send_readings(stream, minutes(4, 1), anomalous[:1])
    assert all(a.is_anomaly for a in sent.answers)
    assert [a.alarm for a in sent.answers] == [False, False, True, False]  # then the cool-down
    assert (sent.stream.new_stream, sent.stream.restarted, sent.stream.model_changed) == (
        True,
        True,
        False,
    )
    assert sent.stream.alarms == 1
    assert not again.stream.new_stream
    assert not again.answers[0].alarm
    assert state.alarms == 1
    assert state.last_alarm_timestamp is not None
    assert state.last_alarm_timestamp.startswith("2026-11-29T12:02:00")


async def test_a_request_policy_is_sent_by_both_clients(server_url: str) -> None:
    every = {"k": 1, "window": 1, "cooldown": 0}
    anomalous = (np.random.default_rng(3).normal(size=(2, 8)) * 9.0).tolist()
    with AnomalyClient(server_url) as client:
        sent = client.send_readings(
            "q2-client-alarm:2", minutes(0, 2), anomalous, alarm_policy=every
        )
        with pytest.raises(AnomalyApiError) as bad:
            client.send_readings(
                "q2-client-alarm:2", minutes(5, 1), anomalous[:1], alarm_policy={"k": 0}
            )
    async with AsyncAnomalyClient(server_url) as aclient:
        window = await aclient.predict_window(
            minutes(0, 2), anomalous, mode="all", alarm_policy=every
        )
    assert [a.alarm for a in sent.answers] == [True, True]
    assert [a.alarm for a in window.answers] == [True, True]
    assert (bad.value.status_code, bad.value.code) == (422, "invalid_request")
