"""The start-up warm-up opens the Redis connections before the first request needs them."""

from __future__ import annotations

from pathlib import Path

from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.testing import RedisServer, free_port
from api_testing import make_settings


def _clients(server: RedisServer) -> int:
    """Connections the server holds, the asking one excluded."""
    with server.client() as client:
        return int(client.info("clients")["connected_clients"]) - 1


async def test_warm_up_opens_the_cache_and_stream_connections(
    tiny_artifacts_dir: Path, redis_server: RedisServer
) -> None:
    settings = make_settings(
        tiny_artifacts_dir, redis_url=redis_server.url, prediction_cache="redis"
    )
    runtime = ServiceRuntime.start(settings)
    try:
        assert _clients(redis_server) == 0  # nothing connects at construction
        await runtime.warm_up()
        assert _clients(redis_server) == 2  # one pooled connection each, kept for requests
        assert runtime.cache.breaker_state == "closed"
        report = await runtime.health()
        assert (report.cache_ok, report.streams_ok) == (True, True)
        assert _clients(redis_server) == 2  # the probe reused them
    finally:
        await runtime.close()


async def test_with_the_default_cache_only_the_stream_store_connects(
    tiny_artifacts_dir: Path, redis_server: RedisServer
) -> None:
    """A Redis URL alone: the prediction cache stays in the process, Redis is the streams'."""
    runtime = ServiceRuntime.start(make_settings(tiny_artifacts_dir, redis_url=redis_server.url))
    try:
        await runtime.warm_up()
        assert (runtime.cache.backend, runtime.streams.backend) == ("memory", "redis")
        assert _clients(redis_server) == 1
    finally:
        await runtime.close()


async def test_warm_up_against_a_dead_redis_opens_the_breakers(tiny_artifacts_dir: Path) -> None:
    """Nothing listens: start-up goes on, the breakers open, requests will skip Redis."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(tiny_artifacts_dir, redis_url=url, prediction_cache="redis")
    runtime = ServiceRuntime.start(settings)
    try:
        await runtime.warm_up()
        assert runtime.cache.breaker_state == "open"
        report = await runtime.health()
        assert report.status == "degraded"
        assert report.model_loaded
    finally:
        await runtime.close()
