"""Section ``streams``: stream readings over HTTP against ``/predict``, ``/predict/window``,
the bytes one stream holds, the stores' appends/s and the alarm step's cost.

The stream model is the default time-aware one (window 60, 8 channels); Redis is a
throwaway ``redis-server`` started here, so the shared one's traffic does not blur it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis

from anomaly_api.config import Settings
from anomaly_api.monitoring.adaptation import AdaptationModel
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.service.stream_alarms import Adaptation, StreamAlarms
from anomaly_api.service.streams import InMemoryStreamStore, RedisStreamStore, StreamStore
from anomaly_api.service.streams.events import EventInput
from bench.load import STREAM_LUA, connect, post_many, run_wrk, send
from bench.report import ratio
from bench.servers import redis_server, service_env, service_server

if TYPE_CHECKING:
    from bench.__main__ import Context

CONNECTIONS = 64
CHANNELS = 8
WINDOW = 60
MODEL_KEY = "bench-model-1"
T0 = 1_800_000_000
POLICY = AlarmPolicy(k=3, window=10, cooldown=30)
ADAPTATION = AdaptationModel(reference=-1.0, spread=0.5)
EVENT_INPUT = EventInput(np.array([0.5]), np.full((1, CHANNELS), 1 / CHANNELS),
                         np.zeros((1, CHANNELS)), tuple(f"c{c}" for c in range(CHANNELS)),
                         np.zeros(CHANNELS), np.ones(CHANNELS))  # fmt: skip


def warm_streams(port: int) -> None:
    """Post ``WINDOW`` readings to each wrk stream before wrk's first timestamp, so wrk
    measures full windows."""
    with connect(port) as conn:
        for sid in range(1, CONNECTIONS + 1):
            for start in range(0, WINDOW, 15):
                body = {
                    "timestamps": [T0 - (WINDOW - start - i) * 300 for i in range(15)],
                    "readings": [[0.0, 1.0, 0.0, 0.1, 1.0, 0.0, 0.2, -0.1]] * 15,
                }
                send(conn, f"/streams/bench-{sid}/readings", orjson.dumps(body))


def window_bodies(count: int, mode: str) -> list[bytes]:
    """``count`` different 1,000-reading ``/predict/window`` bodies."""
    rng = np.random.default_rng(0)
    times = [T0 + 300 * i for i in range(1000)]
    return [
        orjson.dumps({"timestamps": times, "readings": np.round(rng.normal(size=(1000, 8)), 6)
                      .tolist(), "mode": mode})
        for _ in range(count)
    ]  # fmt: skip


def over_http(ctx: Context) -> dict[str, Any]:
    """Point-wise ``/predict`` at 64 connections (cache misses), then stream readings with the
    in-process store and with Redis the same way (``wrk -t64 -c64``: one stream per
    connection), as ratios; ``/predict/window`` with 1,000 readings, one keep-alive client."""
    seconds, windows = ctx.size(1.0, 10.0), ctx.size(3, 40)
    out: dict[str, Any] = {"connections": CONNECTIONS, "duration_s": seconds}

    def load(port: int, path: str, script: str | None = None) -> dict[str, Any]:
        return run_wrk(port, path, CONNECTIONS, seconds, workdir=ctx.workdir, script=script,
                       threads=CONNECTIONS)  # fmt: skip

    with service_server("predict", service_env(ctx.artifacts, "fast")) as server:
        out["predict"] = load(server.port, "/predict")
    stream_lua = STREAM_LUA.format(t0=T0)
    with service_server("streams-memory", service_env(ctx.time_aware, "fast")) as server:
        warm_streams(server.port)
        out["streams_memory"] = load(server.port, "/", stream_lua)
        for key, mode in (("window_1000", "last"), ("window_1000_all", "all")):
            out[key] = post_many(server.port, "/predict/window", window_bodies(windows, mode))
    plain = {**service_env(ctx.time_aware, "fast"), "ANOMALY_STREAM_ADAPTATION": "false"}
    with service_server("streams-memory-unadapted", plain) as server:
        warm_streams(server.port)
        out["streams_memory_unadapted"] = load(server.port, "/", stream_lua)
    with (
        redis_server() as url,
        service_server("streams-redis", service_env(ctx.time_aware, "fast", url)) as server,
    ):
        warm_streams(server.port)
        out["streams_redis"] = load(server.port, "/", stream_lua)
    base = out["predict"]["requests_per_s"]
    out["ratio_memory"] = ratio(out["streams_memory"]["requests_per_s"], base)
    out["ratio_redis"] = ratio(out["streams_redis"]["requests_per_s"], base)
    out["adaptation_cost"] = ratio(  # time per reading, adaptation on / off (events on)
        out["streams_memory_unadapted"]["requests_per_s"], out["streams_memory"]["requests_per_s"]
    )
    return {"streams": out}


def _row(step: int) -> np.ndarray:
    return np.full((1, CHANNELS), float(step)) + np.arange(CHANNELS)


def _redis_store(url: str) -> RedisStreamStore:
    settings = Settings(redis_url=url, stream_prefix="bench:", redis_timeout_s=2.0,
                        stream_max_streams=10_000)  # fmt: skip
    return RedisStreamStore.from_settings(settings)


def state(ctx: Context) -> dict[str, Any]:
    """Bytes one full stream (8 channels, 60 readings) costs: Python heap of the in-process
    store (tracemalloc) and ``used_memory`` growth of a throwaway Redis per stream."""
    streams = ctx.size(200, 2000)
    store = InMemoryStreamStore(max_streams=streams, idle_ttl_s=3600.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(WINDOW + 5):
        for stream in range(streams):
            store.append_now(f"s-{stream}", [float(step)], _row(step), window=WINDOW,
                             model_key=MODEL_KEY)  # fmt: skip
    heap = (tracemalloc.get_traced_memory()[0] - before) / streams
    tracemalloc.stop()
    with redis_server() as url:
        in_redis = asyncio.run(redis_bytes(url, streams))
    memory = {"heap_per_stream": heap, "window_array_nbytes": float(WINDOW * (CHANNELS + 1) * 8)}
    return {"streams": {"state_per_stream": {"memory": memory, "redis": in_redis}}}


async def redis_bytes(url: str, streams: int) -> dict[str, Any]:
    """``used_memory`` growth per full stream, from one connection opened before the base."""
    store = _redis_store(url)
    try:
        with redis.Redis.from_url(url) as client:
            await store.check()
            base = int(client.info("memory")["used_memory"])
            ts = np.arange(WINDOW + 5, dtype=np.float64)
            rows = ts[:, None] + np.arange(CHANNELS)
            for stream in range(streams):
                await store.append(f"s-{stream}", ts, rows, window=WINDOW, model_key=MODEL_KEY)
            grown = int(client.info("memory")["used_memory"]) - base
            key = store.window_key("s-0")
            return {
                "window_value_bytes": int(client.strlen(key)),
                "memory_usage_window_key": int(client.memory_usage(key, samples=0) or 0),
                "used_memory_per_stream": grown / streams,
                "streams_measured": streams,
            }
    finally:
        await store.close()


async def _appends(
    store: StreamStore,
    n: int,
    tag: str,
    alarms: StreamAlarms | None = None,
    tasks: int = 1,
    adapt: bool = False,
) -> float:
    """µs per append of ``tasks`` concurrent callers (each on its own streams, 5% of the
    readings flagged), with the alarm step after each when ``alarms`` (``adapt``: with the
    events and the adaptive threshold too)."""
    per_task = max(n // tasks, 1)
    rows = [_row(step) for step in range(per_task)]

    async def caller(task: int) -> None:
        for step in range(per_task):
            window = await store.append(f"{tag}-{task}-{step % 100}", [float(step)], rows[step],
                                        window=WINDOW, model_key=MODEL_KEY)  # fmt: skip
            flag = np.array([step % 20 == 0])
            if alarms is not None and adapt:
                adaptation = Adaptation(ADAPTATION, np.where(flag, 1.0, -1.0), np.zeros(1, bool))
                await alarms.evaluate_adapted(
                    window, 1, flag, POLICY, inputs=lambda: EVENT_INPUT, adaptation=adaptation
                )
            elif alarms is not None:
                await alarms.evaluate(window, 1, flag, POLICY)

    started = time.perf_counter()
    await asyncio.gather(*(caller(task) for task in range(tasks)))
    return (time.perf_counter() - started) / (per_task * tasks) * 1e6


def stores(ctx: Context) -> dict[str, Any]:
    """Each store alone: µs per append of one caller, alone and with the alarm step
    (``StreamAlarms.evaluate``: the policy, then the compare-and-set of the stream's alarm
    state) in alternating blocks (medians), and appends/s of 64 concurrent tasks."""

    async def measure(store: StreamStore, per_block: int) -> dict[str, Any]:
        alarms = StreamAlarms(store)
        plain, alarmed, adapted = [], [], []
        for block in range(ctx.size(2, 8)):
            plain.append(await _appends(store, per_block, f"plain{block}"))
            alarmed.append(await _appends(store, per_block, f"alarm{block}", alarms))
            adapted.append(await _appends(store, per_block, f"adapt{block}", alarms, adapt=True))
        many = 1e6 / await _appends(store, 8 * per_block, "many", tasks=64)
        if isinstance(store, RedisStreamStore):
            await store.close()
        base, total = statistics.median(plain), statistics.median(alarmed)
        full = statistics.median(adapted)  # events and adaptation on top of the alarms
        return {"append_us": base, "append_with_alarms_us": total, "alarm_ratio": total / base,
                "append_with_adaptation_events_us": full, "adaptation_events_ratio": full / total,
                "alarms_not_stored": alarms.not_stored, "appends_per_s_64_tasks": many}  # fmt: skip

    memory = InMemoryStreamStore(max_streams=100_000, idle_ttl_s=3600.0)
    out = {"memory": asyncio.run(measure(memory, ctx.size(200, 2000)))}
    with redis_server() as url:
        out["redis"] = asyncio.run(measure(_redis_store(url), ctx.size(50, 500)))
    return {"streams": {"stores": out}}


PARTS = {"http": over_http, "state": state, "stores": stores}
