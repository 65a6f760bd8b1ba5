"""Redis outage while serving: predictions keep succeeding, /health says degraded, and
caching resumes by itself when Redis is back. Uses a throwaway redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.service.cache import RedisPredictionCache
from anomaly_api.testing import RedisServer, throwaway_redis
from api_testing import ANOMALOUS, NORMAL, make_settings, open_app

BODY = {"features": NORMAL, "observation_id": "sensor_42_t1234"}
VOLATILE = {"cached", "inference_ms"}  # the only fields a cached answer may change


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server this test kills and restarts (never the shared one)."""
    with throwaway_redis(tmp_path) as server:
        yield server


def _stable(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in VOLATILE}


async def _predict(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/health")
    assert response.status_code == 200, response.text
    health: dict[str, Any] = response.json()
    return health


@pytest.mark.parametrize(
    ("fault", "repair"),
    [(RedisServer.kill, RedisServer.start), (RedisServer.freeze, RedisServer.thaw)],
    ids=["redis-killed", "redis-hung"],
)
async def test_redis_outage_degrades_health_not_predictions(
    tiny_artifacts_dir: Path,
    redis_server: RedisServer,
    fault: Callable[[RedisServer], None],
    repair: Callable[[RedisServer], None],
) -> None:
    """Killed: connections refused. Hung (SIGSTOP): connections accepted, never answered."""
    settings = make_settings(
        tiny_artifacts_dir,
        redis_url=redis_server.url,
        prediction_cache="redis",
        redis_timeout_s=0.2,
        redis_breaker_failures=2,
        redis_breaker_cooldown_s=1.0,
    )
    async with open_app(settings) as (client, runtime):
        cache = runtime.cache
        assert isinstance(cache, RedisPredictionCache)
        health = await _health(client)
        assert health["status"] == "ok"
        assert health["cache"] == {"backend": "redis", "ok": True}

        first = await _predict(client, BODY)
        repeat = await _predict(client, BODY)
        assert (first["cached"], repeat["cached"]) == (False, True)
        assert _stable(repeat) == _stable(first)

        fault(redis_server)
        for _ in range(5):
            during = await _predict(client, BODY)
            assert during["cached"] is False
            assert _stable(during) == _stable(first)
        batch = await client.post("/predict/batch", json={"observations": [BODY, BODY]})
        assert batch.status_code == 200, batch.text
        assert cache.breaker_state != "closed"
        assert cache.skipped > 0  # the breaker spared Redis calls while it was down

        health = await _health(client)
        assert health["status"] == "degraded"
        assert health["model_loaded"] is True
        assert health["cache"] == {"backend": "redis", "ok": False}

        repair(redis_server)  # a restart comes back on the same port, empty
        await _wait_until_cached(client, {"features": ANOMALOUS, "observation_id": "back"})
        assert (await _health(client))["status"] == "ok"


async def _wait_until_cached(
    client: httpx.AsyncClient, body: dict[str, Any], timeout_s: float = 15.0
) -> None:
    """Repeat a request, as clients would, until an answer comes from the cache again."""
    deadline = time.monotonic() + timeout_s
    while not (await _predict(client, body))["cached"]:
        assert time.monotonic() < deadline, "caching did not resume after Redis came back"
        await asyncio.sleep(0.1)
