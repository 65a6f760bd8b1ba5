"""``python -m bench.streams [--smoke] [--out FILE]``: the stream store alone, no HTTP.

Appends per second of one reading per call (8 channels, 60-reading window) for the
in-process store and for Redis -- one client awaiting each call, and 64 concurrent
tasks (one stream each) -- and the bytes one stream costs: Redis ``MEMORY USAGE`` of a
window key, Redis ``used_memory`` growth per stream (window key + live-set entry), and
Python heap per stream of the in-process store (tracemalloc). Redis is a throwaway
``redis-server`` started here, so the shared one's traffic does not blur the numbers.
About a minute; ``--smoke``: seconds, same keys, numbers meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from anomaly_api.config import Settings
from anomaly_api.service.streams import InMemoryStreamStore, RedisStreamStore, StreamStore
from bench.servers import ROOT, redis_server

CHANNELS = 8
WINDOW = 60
MODEL_KEY = "bench-model-1"
CONCURRENCY = 64
OUT = ROOT / "bench" / "results" / "streams.json"


def _row(step: int) -> np.ndarray:
    return np.full((1, CHANNELS), float(step)) + np.arange(CHANNELS)


async def sequential(store: StreamStore, n: int, streams: int = 100) -> float:
    """Appends/s of one caller awaiting each append, round-robin over ``streams``."""
    rows = [_row(step) for step in range(n)]
    started = time.perf_counter()
    for step in range(n):
        await store.append(
            f"seq-{step % streams}", [float(step)], rows[step], window=WINDOW, model_key=MODEL_KEY
        )
    return n / (time.perf_counter() - started)


async def concurrent(store: StreamStore, n: int, tasks: int = CONCURRENCY) -> float:
    """Appends/s of ``tasks`` concurrent callers, each appending to its own stream."""
    per_task = n // tasks
    rows = [_row(step) for step in range(per_task)]

    async def sensor(task: int) -> None:
        for step in range(per_task):
            await store.append(
                f"con-{task}", [float(step)], rows[step], window=WINDOW, model_key=MODEL_KEY
            )

    started = time.perf_counter()
    await asyncio.gather(*(sensor(task) for task in range(tasks)))
    return per_task * tasks / (time.perf_counter() - started)


def memory_bytes_per_stream(streams: int) -> dict[str, float]:
    """Python heap of ``streams`` full 60-reading windows, per stream (tracemalloc)."""
    store = InMemoryStreamStore(max_streams=streams, idle_ttl_s=3600.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(WINDOW + 5):
        for stream in range(streams):
            store.append_now(
                f"size-{stream}", [float(step)], _row(step), window=WINDOW, model_key=MODEL_KEY
            )
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    held = store._streams["size-0"].records
    return {
        "heap_per_stream": (after - before) / streams,
        "window_array_nbytes": float(held.nbytes),
    }


async def redis_numbers(url: str, *, smoke: bool) -> dict[str, Any]:
    settings = Settings(redis_url=url, stream_prefix="bench:", redis_timeout_s=1.0)
    results: dict[str, Any] = {}
    store = RedisStreamStore.from_settings(settings)
    try:
        await store.append("warm", [0.0], _row(0), window=WINDOW, model_key=MODEL_KEY)
        results["pings_per_s_single_client"] = await pings(store, 300 if smoke else 5000)
        with redis.Redis.from_url(url) as client:
            client.config_resetstat()  # our own throwaway server
        results["appends_per_s_single_client"] = await sequential(store, 300 if smoke else 5000)
        results["appends_per_s_64_tasks"] = await concurrent(store, 640 if smoke else 20_000)
        assert store.fallbacks == 0, "a Redis call failed during the benchmark"
        with redis.Redis.from_url(url) as client:
            stats = client.info("commandstats")["cmdstat_evalsha"]
        # Redis's own time per append script (its single thread's ceiling is 1e6 / this).
        results["server_us_per_append"] = float(stats["usec_per_call"])
    finally:
        await store.close()
    results.update(await redis_bytes_per_stream(settings, 200 if smoke else 2000))
    return results


async def pings(store: RedisStreamStore, n: int) -> float:
    """Baseline: PINGs/s of one client awaiting each (the machine's round trip)."""
    client = store._client
    started = time.perf_counter()
    for _ in range(n):
        await client.ping()
    return n / (time.perf_counter() - started)


async def redis_bytes_per_stream(settings: Settings, streams: int) -> dict[str, Any]:
    """``used_memory`` growth per full stream, measured from one fresh connection (the
    throughput phase's 64 connections and their buffers are closed first)."""
    assert settings.redis_url is not None
    with redis.Redis.from_url(settings.redis_url) as client:
        for key in client.scan_iter(match="bench:*"):
            client.delete(key)
        await asyncio.sleep(1.0)
        store = RedisStreamStore.from_settings(settings)
        try:
            await store.check()  # opens the connection before the baseline
            base = int(client.info("memory")["used_memory"])
            ts = np.arange(WINDOW + 5, dtype=np.float64)
            rows = ts[:, None] + np.arange(CHANNELS)
            for stream in range(streams):
                await store.append(f"size-{stream}", ts, rows, window=WINDOW, model_key=MODEL_KEY)
                await store.append(
                    f"size-{stream}",
                    [WINDOW + 5.0],
                    _row(WINDOW + 5),
                    window=WINDOW,
                    model_key=MODEL_KEY,
                )
            grown = int(client.info("memory")["used_memory"]) - base
            key = store.window_key("size-0")
            return {
                "window_value_bytes": int(client.strlen(key)),
                "memory_usage_window_key": int(client.memory_usage(key, samples=0) or 0),
                "used_memory_per_stream": grown / streams,
                "streams_measured": streams,
                "allocator": str(client.info("memory").get("mem_allocator")),
            }
        finally:
            await store.close()


async def memory_numbers(*, smoke: bool) -> dict[str, float]:
    store = InMemoryStreamStore(max_streams=10_000, idle_ttl_s=3600.0)
    return {
        "appends_per_s_single_client": await sequential(store, 2000 if smoke else 50_000),
        "appends_per_s_64_tasks": await concurrent(store, 6400 if smoke else 64_000),
    }


def state_per_stream(streams: int) -> dict[str, Any]:
    """Bytes one full stream (8 channels, 60 readings) costs: Python heap of the in-process
    store and ``used_memory`` growth of a throwaway Redis, with the window's own sizes."""
    memory = memory_bytes_per_stream(streams)
    with redis_server() as url:
        settings = Settings(redis_url=url, stream_prefix="bench:", redis_timeout_s=1.0)
        in_redis = asyncio.run(redis_bytes_per_stream(settings, streams))
    return {"memory": memory, "redis": in_redis}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    meta = {
        "mode": "smoke" if options.smoke else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": list(os.getloadavg()),
        "channels": CHANNELS,
        "window": WINDOW,
    }
    memory = asyncio.run(memory_numbers(smoke=options.smoke))
    memory.update(memory_bytes_per_stream(200 if options.smoke else 2000))
    with redis_server() as url:
        redis_results = asyncio.run(redis_numbers(url, smoke=options.smoke))
    meta["load_average_after"] = list(os.getloadavg())
    report = {"meta": meta, "memory": memory, "redis": redis_results}
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(
        f"stream store, {CHANNELS} channels, window {WINDOW} (load {meta['load_average_before']})"
    )
    for backend, numbers in (("memory", memory), ("redis", redis_results)):
        for name, value in numbers.items():
            shown = f"{value:,.0f}" if isinstance(value, float | int) else value
            print(f"  {backend:7s} {name:30s} {shown}")
    print(f"written to {options.out}")


if __name__ == "__main__":
    main()
