"""The stream helpers of both clients, against ``httpx.MockTransport``: request shape,
parsing, timestamps, and which errors are retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from anomaly_api.client import (
    AnomalyApiError,
    AnomalyClient,
    AsyncAnomalyClient,
    Contribution,
    RetryPolicy,
)
from anomaly_api.client._client import stream_body, timestamp_value

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.002)
ROW = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]


def stream_answer(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "timestamp": f"2026-11-29T12:0{index}:00+00:00",
        "is_anomaly": index == 1,
        "anomaly_score": 2.5 if index == 1 else -0.5,
        "severity": 0.6 if index == 1 else 0.0,
        "confidence": 0.9,
        "warming_up": index == 0,
        "contributions": [{"feature": "f3", "share": 0.8, "why": "flat for 9 readings"}],
        "novel": "kept",  # a field this client does not know yet
    }


WINDOW = {
    "answers": [stream_answer(0), stream_answer(1)],
    "n_anomalies": 1,
    "model_version": "m-1",
    "model_kind": "time-aware",
    "window": 32,
    "inference_ms": 1.5,
    "future": 1,
}
READINGS = {
    "stream_id": "sensor-42",
    "answers": [stream_answer(0)],
    "n_anomalies": 0,
    "model_version": "m-1",
    "model_kind": "point-wise",
    "stream": {
        "readings_in_window": 1,
        "window": 1,
        "total": 7,
        "warming_up": False,
        "restarted": True,
        "backend": "memory",
        "degraded": False,
    },
    "inference_ms": 0.7,
}
STATE = {
    "stream_id": "sensor-42",
    "total": 7,
    "readings_in_window": 1,
    "n_features": 8,
    "first_timestamp": "2026-11-29T12:00:00+00:00",
    "last_timestamp": "2026-11-29T12:06:00+00:00",
    "model_version": "m-1",
    "expires_in_s": 86000.0,
    "backend": "redis",
    "degraded": False,
}


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": f"rid-{status}"}}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """Answers ``responses`` in turn and keeps every request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.responses.pop(0)

    def body(self, n: int = -1) -> Any:
        return json.loads(self.seen[n].content)


def sync_client(recorder: Recorder) -> AnomalyClient:
    return AnomalyClient("http://test", transport=httpx.MockTransport(recorder), retry=FAST, seed=1)


def async_client(recorder: Recorder) -> AsyncAnomalyClient:
    return AsyncAnomalyClient(
        "http://test", transport=httpx.MockTransport(recorder), retry=FAST, seed=1
    )


# --------------------------------------------------------------------------- timestamps


def test_timestamps_of_every_kind_are_sent_as_the_api_takes_them() -> None:
    aware = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    plus_two = datetime(2026, 11, 29, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp_value(aware) == "2026-11-29T12:00:00+00:00"
    assert timestamp_value(plus_two) == "2026-11-29T14:00:00+02:00"
    assert timestamp_value("2026-11-29T12:00:00Z") == "2026-11-29T12:00:00Z"
    assert timestamp_value(1_790_000_000) == 1_790_000_000.0
    assert isinstance(timestamp_value(1_790_000_000), float)


def test_a_naive_datetime_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        timestamp_value(datetime(2026, 11, 29, 12, 0))


@pytest.mark.parametrize("value", [True, None, b"2026"])
def test_other_timestamp_types_are_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="timestamp must be"):
        timestamp_value(value)


def test_one_timestamp_per_reading() -> None:
    with pytest.raises(ValueError, match="2 timestamps for 1 readings"):
        stream_body([1.0, 2.0], [ROW])


def test_a_naive_datetime_sends_nothing() -> None:
    recorder = Recorder()
    with sync_client(recorder) as client, pytest.raises(ValueError, match="no timezone"):
        client.send_readings("s", [datetime(2026, 11, 29)], [ROW])
    assert recorder.seen == []


# --------------------------------------------------------------------------- requests and parsing


def test_predict_window_request_and_result() -> None:
    recorder = Recorder(httpx.Response(200, json=WINDOW))
    t0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    by_name = dict(zip([f"f{i}" for i in range(8)], ROW, strict=True))
    with sync_client(recorder) as client:
        result = client.predict_window([t0, "2026-11-29T12:05:00Z"], [ROW, by_name], mode="all")
    request = recorder.seen[0]
    assert (request.method, request.url.path) == ("POST", "/predict/window")
    assert request.headers["content-type"] == "application/json"
    assert recorder.body() == {
        "timestamps": ["2026-11-29T12:00:00+00:00", "2026-11-29T12:05:00Z"],
        "readings": [ROW, by_name],
        "mode": "all",
    }
    assert (result.n_anomalies, result.model_kind, result.window) == (1, "time-aware", 32)
    assert [a.index for a in result.answers] == [0, 1]
    assert result.last.is_anomaly
    assert result.last.severity == 0.6
    assert result.answers[0].warming_up
    assert result.last.contributions == (Contribution("f3", 0.8, "flat for 9 readings"),)
    assert result.last.extra == {"novel": "kept"}
    assert result.extra == {"future": 1}
    assert result.raw == WINDOW


def test_predict_window_defaults_send_no_top_k() -> None:
    recorder = Recorder(httpx.Response(200, json=WINDOW))
    with sync_client(recorder) as client:
        client.predict_window([1.0], [ROW])
        assert recorder.body() == {"timestamps": [1.0], "readings": [ROW], "mode": "last"}


def test_send_readings_request_and_result() -> None:
    recorder = Recorder(httpx.Response(200, json=READINGS))
    with sync_client(recorder) as client:
        result = client.send_readings("sensor-42", [1_790_000_000], [ROW], top_k=0)
    request = recorder.seen[0]
    assert (request.method, request.url.path) == ("POST", "/streams/sensor-42/readings")
    assert recorder.body() == {"timestamps": [1_790_000_000.0], "readings": [ROW], "top_k": 0}
    assert result.stream_id == "sensor-42"
    assert result.stream.total == 7
    assert result.stream.restarted
    assert result.model_kind == "point-wise"
    assert result.answers[0].index == 0


def test_stream_state_and_reset_requests() -> None:
    recorder = Recorder(httpx.Response(200, json=STATE), httpx.Response(204))
    with sync_client(recorder) as client:
        state = client.stream_state("sensor-42")
        client.reset_stream("sensor-42")
    assert [(r.method, r.url.path) for r in recorder.seen] == [
        ("GET", "/streams/sensor-42"),
        ("DELETE", "/streams/sensor-42"),
    ]
    assert recorder.seen[1].content == b""
    assert (state.total, state.n_features, state.backend) == (7, 8, "redis")
    assert state.last_timestamp == "2026-11-29T12:06:00+00:00"
    assert state.extra == {}


def test_a_stream_id_is_percent_encoded() -> None:
    recorder = Recorder(httpx.Response(200, json=STATE))
    with sync_client(recorder) as client:
        client.stream_state("a/b c")
    assert recorder.seen[0].url.raw_path == b"/streams/a%2Fb%20c"


# --------------------------------------------------------------------------- errors and retries


def test_stream_order_409_is_raised_and_not_retried() -> None:
    recorder = Recorder(error(409, "stream_order"), httpx.Response(200, json=READINGS))
    with sync_client(recorder) as client, pytest.raises(AnomalyApiError) as caught:
        client.send_readings("s", [1.0], [ROW])
    assert len(recorder.seen) == 1
    assert (caught.value.status_code, caught.value.code) == (409, "stream_order")
    assert caught.value.message == "stream_order happened"
    assert caught.value.request_id == "rid-409"


@pytest.mark.parametrize(("status", "code"), [(404, "stream_not_found"), (422, "invalid_body")])
def test_other_stream_errors_are_not_retried(status: int, code: str) -> None:
    recorder = Recorder(error(status, code), httpx.Response(200, json=STATE))
    with sync_client(recorder) as client, pytest.raises(AnomalyApiError) as caught:
        client.stream_state("s")
    assert len(recorder.seen) == 1
    assert caught.value.code == code


def test_a_full_stream_store_429_is_retried_after_retry_after() -> None:
    recorder = Recorder(
        error(429, "stream_store_full", {"Retry-After": "0"}), httpx.Response(200, json=READINGS)
    )
    with sync_client(recorder) as client:
        result = client.send_readings("sensor-42", [1.0], [ROW])
    assert len(recorder.seen) == 2
    assert recorder.seen[0].content == recorder.seen[1].content
    assert result.stream.total == 7


async def test_async_client_stream_helpers() -> None:
    recorder = Recorder(
        httpx.Response(200, json=WINDOW),
        httpx.Response(200, json=READINGS),
        httpx.Response(200, json=STATE),
        httpx.Response(204),
        error(409, "stream_order"),
    )
    async with async_client(recorder) as client:
        window = await client.predict_window([1.0, 2.0], [ROW, ROW], top_k=2)
        readings = await client.send_readings("sensor-42", ["2026-11-29T12:00:00Z"], [ROW])
        state = await client.stream_state("sensor-42")
        await client.reset_stream("sensor-42")
        with pytest.raises(AnomalyApiError) as caught:
            await client.send_readings("sensor-42", [1.0], [ROW])
    assert [(r.method, r.url.path) for r in recorder.seen] == [
        ("POST", "/predict/window"),
        ("POST", "/streams/sensor-42/readings"),
        ("GET", "/streams/sensor-42"),
        ("DELETE", "/streams/sensor-42"),
        ("POST", "/streams/sensor-42/readings"),
    ]
    assert recorder.body(0)["top_k"] == 2
    assert window.last.is_anomaly
    assert readings.stream.total == 7
    assert state.total == 7
    assert caught.value.code == "stream_order"


def test_adapt_is_sent_only_when_given() -> None:
    assert "adapt" not in stream_body([1.0], [ROW])
    assert stream_body([1.0], [ROW], adapt=False)["adapt"] is False
    assert stream_body([1.0], [ROW], adapt=True)["adapt"] is True


def test_follow_is_sent_only_when_given() -> None:
    assert "follow" not in stream_body([1.0], [ROW])
    assert stream_body([1.0], [ROW], follow=False)["follow"] is False
