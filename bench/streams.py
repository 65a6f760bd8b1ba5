"""Section ``streams``: stream readings over HTTP against ``/predict``, ``/predict/window``,
the bytes one stream holds and the watcher's jobs (throwaway Redis, Mosquitto, Prometheus)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis

from anomaly_api.config import Settings
from anomaly_api.service.streams import InMemoryStreamStore, RedisStreamStore
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


def warm_streams(port: int) -> None:
    """Fill each wrk stream's window before wrk's first timestamp."""
    readings = [[0.0, 1.0, 0.0, 0.1, 1.0, 0.0, 0.2, -0.1]] * 15
    with connect(port) as conn:
        for sid in range(1, CONNECTIONS + 1):
            for start in range(0, WINDOW, 15):
                times = [T0 - (WINDOW - start - i) * 300 for i in range(15)]
                body = orjson.dumps({"timestamps": times, "readings": readings})
                send(conn, f"/streams/bench-{sid}/readings", body)


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
    """``/predict``, then stream readings (memory, Redis) at 64 connections; ``/predict/window``."""
    seconds, windows = ctx.size(1.0, 10.0), ctx.size(3, 40)
    out: dict[str, Any] = {"connections": CONNECTIONS, "duration_s": seconds}

    def load(port: int, path: str, script: str | None = None) -> dict[str, Any]:
        return run_wrk(port, path, CONNECTIONS, seconds, workdir=ctx.workdir, script=script,
                       threads=CONNECTIONS)  # fmt: skip

    with service_server("predict", service_env(ctx.artifacts, "fast")) as server:
        out["predict"] = load(server.port, "/predict")
    stream_lua = STREAM_LUA.substitute(t0=T0)
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


def state(ctx: Context) -> dict[str, Any]:
    """Bytes one full stream costs: in-process heap (tracemalloc) and Redis ``used_memory``."""
    streams = ctx.size(200, 2000)
    store = InMemoryStreamStore(max_streams=streams, idle_ttl_s=3600.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(WINDOW + 5):
        for stream in range(streams):
            row = np.full((1, CHANNELS), float(step)) + np.arange(CHANNELS)
            store.append_now(f"s-{stream}", [float(step)], row, window=WINDOW, model_key=MODEL_KEY)
    heap = (tracemalloc.get_traced_memory()[0] - before) / streams
    tracemalloc.stop()
    with redis_server() as url:
        in_redis = asyncio.run(redis_bytes(url, streams))
    memory = {"heap_per_stream": heap, "window_array_nbytes": float(WINDOW * (CHANNELS + 1) * 8)}
    return {"streams": {"state_per_stream": {"memory": memory, "redis": in_redis}}}


async def redis_bytes(url: str, streams: int) -> dict[str, Any]:
    """``used_memory`` growth per full stream, from one connection opened before the base."""
    settings = Settings(redis_url=url, stream_prefix="bench:", redis_timeout_s=2.0,
                        stream_max_streams=10_000)  # fmt: skip
    store = RedisStreamStore.from_settings(settings)
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


def watch(ctx: Context) -> dict[str, Any]:
    """The watcher's MQTT job: readings/s from a throwaway Mosquitto, and without MQTT."""
    from anomaly_api.data.timeseries import synthetic_timeseries
    from anomaly_api.watch.config import parse_watch_config
    from anomaly_api.watch.runner import Job, Watcher
    from anomaly_api.watch.sources.mqtt import group_readings, parse_message
    from bench.servers import mosquitto_server

    n, streams = ctx.option("watch_readings", ctx.size(2_000, 100_000)), 8
    k = ctx.option("watch_batch", 1)  # readings per message (> 1: {"readings": [...]})
    artifacts = _w30(ctx)
    data = synthetic_timeseries(seed=1, n_rows=2000).data
    rows = data.X.tolist()
    readings = [{"ts": 1e9 + i, "values": dict(zip(data.feature_names, rows[i % 2000],
                strict=True))} for i in range(n)]  # fmt: skip
    per = [readings[s::streams] for s in range(streams)]
    messages = [(s, orjson.dumps(r[0] if k == 1 else {"readings": r})) for j in range(0,
                len(per[0]), k) for s in range(streams) if (r := per[s][j:j + k])]  # fmt: skip
    for s in range(streams):
        lines = [m for t, m in messages if t == s]
        (ctx.workdir / f"m{s}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out: dict[str, float] = {}
    with mosquitto_server() as port:
        job = {"name": "bench", "source": {"mqtt": {"port": port, "topics": ["bench/+/r"]}},
               "sinks": {"metrics": False}}  # fmt: skip
        config = parse_watch_config({"artifacts_dir": str(artifacts), "metrics": {"port": 0},
                                     "state_dir": str(ctx.workdir), "jobs": [job]})  # fmt: skip

        async def run() -> None:
            watcher = Watcher(config, Settings(stream_max_readings=5000))
            task = asyncio.create_task(watcher.run())
            while not watcher.jobs or watcher.jobs[0].mqtt_source is None \
                    or not watcher.jobs[0].mqtt_source.connected.is_set():  # noqa: ASYNC110  # fmt: skip
                await asyncio.sleep(0.05)
            scored = watcher.metrics.readings.labels("bench", "scored")._value
            publishers = [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port),  # noqa: ASYNC220
                          "-q", "1", "-t", f"bench/m{s}/r", "-l"],
                          stdin=(ctx.workdir / f"m{s}.jsonl").open("rb"))
                          for s in range(streams)]  # fmt: skip
            while scored.get() == 0:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.001)
            started, first = time.perf_counter(), scored.get()  # the publishers are up
            while scored.get() < n and time.perf_counter() - started < 600:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            out["mqtt_readings_per_s"] = (scored.get() - first) / (time.perf_counter() - started)
            for publisher in publishers:
                publisher.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            fresh = Watcher(config, Settings(stream_max_readings=5000))
            fresh.check()
            direct = Job(config.jobs[0], fresh.scorer, fresh.metrics, fresh.watermarks_for("bench"))
            started = time.perf_counter()
            taken: list[Any] = []
            for s, message in messages:
                taken += parse_message("bench", 1, f"bench/m{s}/r", message)[0]
                if len(taken) >= 4096 or message is messages[-1][1]:
                    await direct.score(group_readings(taken))
                    taken = []
            out["parsed_and_scored_per_s"] = n / (time.perf_counter() - started)

        asyncio.run(run())
    return {"streams": {"watch": {**out, "readings": n, "streams": streams, "window": 30,
                                  "readings_per_message": k}}}  # fmt: skip


def _w30(ctx: Context) -> Path:
    """The default time-aware model with a window of 30 (fitted once per run)."""
    from bench.data import prepare_time_aware

    artifacts = ctx.workdir / "time-aware-w30"
    if not (artifacts / "LATEST").exists():
        prepare_time_aware(artifacts, ctx.size(3000, 10_000), window=30)
    return artifacts


_EXPORTER = """
import sys, itertools
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from anomaly_api.data.timeseries import synthetic_timeseries
n, step = int(sys.argv[1]), itertools.count()
data = synthetic_timeseries(seed=1, n_rows=2000).data
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        row = data.X[next(step) % 2000]
        body = "".join(f'sensor_value{{instance="i{i}",sensor="{c}"}} {v + i * 1e-6!r}\\n'
                       for i in range(n) for c, v in zip(data.feature_names, row.tolist()))
        body = body.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H); print(s.server_port, flush=True); s.serve_forever()
"""


def watch_prometheus(ctx: Context) -> dict[str, Any]:
    """The watcher's Prometheus job (``watch_streams`` streams): its CPU seconds per run."""
    from anomaly_api.watch.config import parse_watch_config
    from anomaly_api.watch.runner import Job, Watcher
    from bench.servers import prometheus_server

    n, every = ctx.option("watch_streams", ctx.size(20, 1000)), 15.0
    exporter = subprocess.Popen([sys.executable, "-c", _EXPORTER, str(n)], stdout=subprocess.PIPE)
    try:
        assert exporter.stdout is not None
        with prometheus_server(int(exporter.stdout.readline())) as url:
            source = {"url": url, "query": "sensor_value", "channel_label": "sensor",
                      "group_by": ["instance"], "step": "1s", "lookback": "1m",
                      "timeout": "60s"}  # fmt: skip
            config = parse_watch_config({"artifacts_dir": str(_w30(ctx)),
                "state_dir": str(ctx.workdir / "prom"),
                "jobs": [{"name": "prom", "source": {"prometheus": source}}]})  # fmt: skip
            watcher = Watcher(config, Settings())
            watcher.check()
            marks = watcher.watermarks_for("prom")
            job = Job(config.jobs[0], watcher.scorer, watcher.metrics, marks)

            async def run() -> dict[str, float]:
                await asyncio.sleep(ctx.size(8.0, 40.0))  # full windows on the first run
                first, due = await job.tick(time.time()), time.time()
                cpu, scored = [], 0
                for _ in range(ctx.size(1, 3)):  # every 15 s, as the job's schedule runs
                    due += every
                    await asyncio.sleep(max(0.0, due - time.time()))
                    started = time.process_time()
                    scored += await job.tick(time.time())
                    cpu.append(time.process_time() - started)
                await job.close()
                return {"first_run_readings": first, "readings_per_run": scored / len(cpu),
                        "cpu_s_per_run": statistics.median(cpu),
                        "core_share": statistics.median(cpu) / every}  # fmt: skip

            out = asyncio.run(run())
    finally:
        exporter.terminate()
        exporter.wait()
    return {"streams": {"watch_prometheus": {**out, "streams": n, "infer_every_s": every}}}


PARTS = {"http": over_http, "state": state, "watch": watch, "watch_prometheus": watch_prometheus}
