"""Retries, errors and ordering of both clients, against ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from anomaly_api.client import (
    AnomalyApiError,
    AnomalyClient,
    AnomalyConnectionError,
    AsyncAnomalyClient,
    RetryPolicy,
)
from anomaly_api.client._transport import Send, Sleep, exchange, retry_after_seconds

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.002)
Handler = Callable[[httpx.Request], httpx.Response]


def answer(row: list[float], index: int) -> dict[str, Any]:
    """A /predict answer whose score echoes the row's first feature."""
    return {
        "observation_id": f"obs-{index}",
        "is_anomaly": row[0] > 0,
        "anomaly_score": row[0],
        "confidence": 0.75,
        "model_version": "m-1",
        "inference_ms": 1.0,
        "detectors": {
            "isolation_forest": {"score": -0.5, "threshold": -0.6, "vote": False},
            "local_outlier_factor": {"score": -1.0, "threshold": -1.5, "vote": False},
            "zscore": {"score": row[0], "threshold": -3.0, "vote": False},
        },
        "cached": False,
        "drift_flag": "low",  # a field this client does not know yet
    }


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": f"rid-{status}"}}
    return httpx.Response(status, json=body, headers=headers)


def scripted(*outcomes: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering ``outcomes`` in turn (an exception is raised), and its log."""
    seen: list[httpx.Request] = []
    queue = list(outcomes)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return handle, seen


def ok() -> httpx.Response:
    return httpx.Response(200, json=answer([1.0] * 8, 0))


def sync_client(handler: Handler, **options: Any) -> AnomalyClient:
    options.setdefault("retry", FAST)
    return AnomalyClient("http://test", transport=httpx.MockTransport(handler), seed=1, **options)


def async_client(handler: Handler, **options: Any) -> AsyncAnomalyClient:
    options.setdefault("retry", FAST)
    return AsyncAnomalyClient(
        "http://test", transport=httpx.MockTransport(handler), seed=1, **options
    )


@pytest.mark.parametrize(
    "first",
    [
        lambda: error(503, "model_not_ready"),
        lambda: error(429, "rate_limited"),
        lambda: httpx.ConnectError("refused"),
        lambda: httpx.RemoteProtocolError("server closed"),
    ],
    ids=["503", "429", "connect-error", "protocol-error"],
)
def test_retryable_failures_are_retried_until_success(first: Callable[[], Any]) -> None:
    handler, seen = scripted(first(), first(), ok())
    with sync_client(handler) as client:
        prediction = client.predict([1.0] * 8)
    assert prediction.anomaly_score == 1.0
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_json"),
        (401, "missing_api_key"),
        (403, "invalid_api_key"),
        (404, "not_found"),
        (413, "payload_too_large"),
        (422, "invalid_features"),
        (500, "internal_error"),
    ],
)
def test_other_errors_are_never_retried(status: int, code: str) -> None:
    handler, seen = scripted(error(status, code), ok())
    with sync_client(handler) as client, pytest.raises(AnomalyApiError) as caught:
        client.predict([1.0] * 8)
    assert len(seen) == 1
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.message == f"{code} happened"
    assert caught.value.request_id == f"rid-{status}"


def test_retries_run_out_with_the_last_error() -> None:
    handler, seen = scripted(*[error(503, "model_not_ready")] * 4)
    with sync_client(handler) as client, pytest.raises(AnomalyApiError) as caught:
        client.predict([1.0] * 8)
    assert len(seen) == 4
    assert caught.value.code == "model_not_ready"


def test_health_reports_a_connection_error_at_once() -> None:
    handler, seen = scripted(*[httpx.ConnectError("refused")] * 4)
    with (
        sync_client(handler) as client,
        pytest.raises(AnomalyConnectionError, match="ConnectError"),
    ):
        client.health()
    assert len(seen) == 1  # health() does not retry: it reports what it sees


def test_predict_retries_connection_errors_up_to_max_attempts() -> None:
    handler, seen = scripted(*[httpx.ConnectError("refused")] * 4)
    with sync_client(handler) as client, pytest.raises(AnomalyConnectionError, match="4 attempts"):
        client.predict([1.0] * 8)
    assert len(seen) == 4


def test_read_timeouts_are_not_retried() -> None:
    handler, seen = scripted(httpx.ReadTimeout("slow"), ok())
    with sync_client(handler) as client, pytest.raises(AnomalyConnectionError, match="ReadTimeout"):
        client.predict([1.0] * 8)
    assert len(seen) == 1


def test_a_non_json_error_body_still_raises_with_the_status() -> None:
    handler, _ = scripted(httpx.Response(502, text="Bad Gateway from proxy"))
    with sync_client(handler) as client, pytest.raises(AnomalyApiError) as caught:
        client.predict([1.0] * 8)
    assert caught.value.status_code == 502
    assert caught.value.message == "Bad Gateway from proxy"


def test_retry_after_is_honoured() -> None:
    handler, seen = scripted(error(429, "rate_limited", {"Retry-After": "0.3"}), ok())
    started = time.monotonic()
    with sync_client(handler) as client:
        client.predict([1.0] * 8)
    assert time.monotonic() - started >= 0.3
    assert len(seen) == 2


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=3.0)
    request = httpx.Request("POST", "http://test/predict")
    steps = exchange(request, policy, random.Random(3))
    delays = []
    action = next(steps)
    for outcome in [
        error(503, "x"),
        error(503, "x"),
        error(503, "x"),
        error(429, "x", {"Retry-After": "7"}),
    ]:
        assert isinstance(action, Send)
        sleep = steps.send(outcome)
        assert isinstance(sleep, Sleep)
        delays.append(sleep.seconds)
        action = steps.send(None)
    assert 0 <= delays[0] <= 1.0
    assert 0 <= delays[1] <= 2.0
    assert 0 <= delays[2] <= 3.0  # capped at max_delay_s
    assert delays[3] == 7.0
    assert len(set(delays[:3])) == 3  # jittered, not fixed


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_api_key_and_json_body_are_sent() -> None:
    handler, seen = scripted(ok())
    with sync_client(handler, api_key="k-1") as client:
        client.predict({"f0": 1.0}, observation_id="o-1")
    assert seen[0].headers["x-api-key"] == "k-1"
    assert json.loads(seen[0].content) == {"features": {"f0": 1.0}, "observation_id": "o-1"}


def test_unknown_answer_fields_are_kept() -> None:
    handler, _ = scripted(ok())
    with sync_client(handler) as client:
        prediction = client.predict([1.0] * 8)
    assert prediction.raw["drift_flag"] == "low"
    assert prediction.extra == {"drift_flag": "low"}
    assert prediction.detectors["zscore"].score == 1.0


def batch_server(max_rows: int) -> tuple[Handler, dict[str, int]]:
    """A /predict/batch handler with random delays that tracks concurrency and batch sizes."""
    lock = threading.Lock()
    stats = {"in_flight": 0, "max_in_flight": 0, "calls": 0, "largest": 0}
    rng = random.Random(7)

    def handle(request: httpx.Request) -> httpx.Response:
        observations = json.loads(request.content)["observations"]
        with lock:
            stats["in_flight"] += 1
            stats["calls"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            stats["largest"] = max(stats["largest"], len(observations))
            delay = rng.uniform(0.0, 0.02)
        time.sleep(delay)
        with lock:
            stats["in_flight"] -= 1
        if len(observations) > max_rows:
            return error(422, "invalid_batch_size")
        answers = [answer(o["features"], i) for i, o in enumerate(observations)]
        return httpx.Response(200, json={"predictions": answers})

    return handle, stats


def test_predict_many_splits_keeps_order_and_bounds_concurrency() -> None:
    handler, stats = batch_server(max_rows=7)
    rows = [[float(i)] + [0.0] * 7 for i in range(100)]
    with sync_client(handler, max_batch_rows=7, max_concurrency=3) as client:
        predictions = client.predict_many(rows)
    assert [p.anomaly_score for p in predictions] == [float(i) for i in range(100)]
    assert stats["calls"] == 15
    assert stats["largest"] == 7
    assert 1 < stats["max_in_flight"] <= 3


def test_predict_many_of_nothing_calls_nothing() -> None:
    handler, stats = batch_server(max_rows=7)
    with sync_client(handler) as client:
        assert client.predict_many([]) == []
    assert stats["calls"] == 0


async def test_async_client_retries_and_keeps_order() -> None:
    handler, seen = scripted(error(503, "model_not_ready"), httpx.ConnectError("refused"), ok())
    async with async_client(handler) as client:
        prediction = await client.predict([1.0] * 8)
        assert prediction.is_anomaly
    assert len(seen) == 3

    handler2, stats = batch_server(max_rows=10)
    rows = [[float(i)] + [0.0] * 7 for i in range(95)]
    async with async_client(handler2, max_batch_rows=10, max_concurrency=2) as client:
        predictions = await client.predict_many(rows)
    assert [p.anomaly_score for p in predictions] == [float(i) for i in range(95)]
    assert stats["calls"] == 10


async def test_async_client_does_not_retry_a_422() -> None:
    handler, seen = scripted(error(422, "invalid_features"), ok())
    async with async_client(handler) as client:
        with pytest.raises(AnomalyApiError, match="invalid_features"):
            await client.predict([1.0])
    assert len(seen) == 1


async def test_async_predict_many_bounds_concurrency() -> None:
    in_flight = 0
    peak = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        observations = json.loads(request.content)["observations"]
        return httpx.Response(
            200, json={"predictions": [answer(o["features"], 0) for o in observations]}
        )

    client = AsyncAnomalyClient(
        "http://test", transport=httpx.MockTransport(handle), max_batch_rows=5, max_concurrency=3
    )
    async with client:
        predictions = await client.predict_many([[float(i)] * 8 for i in range(60)])
    assert [p.anomaly_score for p in predictions] == [float(i) for i in range(60)]
    assert peak == 3
