"""Part ``cost.batch`` (of ``bench/cost.py``): where one 1,000-row ``/predict/batch``
spends its time, step by step.

In process, each step of the request path on its own, called as the service calls it
(the service's own objects, from its lifespan; every body new rows, so every row a cache
miss), then the whole request through uvicorn's protocol in memory (``HttpHarness``), and
last over loopback HTTP: one keep-alive client against a served process, its time split
into sending the body, waiting for the answer's head and reading the answer. Steps are
timed as wall time and as the process's CPU time (every thread), medians of interleaved
rounds: the kernel's neighbour search and forest walk run on two threads, so its wall
time is below its CPU time on an idle machine and above it on a loaded one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import orjson

from bench.cost import HttpHarness, _served, raw_post
from bench.data import batch_body
from bench.load import connect
from bench.predict import cpu_s
from bench.servers import service_env, service_server

if TYPE_CHECKING:
    from bench.__main__ import Context

Step = Callable[[int], Awaitable[object]]
"""One step, given a fresh counter (a new body's number) each call."""


async def _timed(steps: dict[str, Step], rounds: int, per_round: int) -> dict[str, Any]:
    """Each step's median wall and CPU ms over ``rounds`` of per-round medians, the steps
    interleaved round by round."""
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    counter = 50_000
    for _ in range(rounds):
        for name, step in steps.items():
            w, c = [], []
            for _ in range(per_round):
                counter += 1
                started, started_cpu = time.perf_counter(), time.process_time()
                await step(counter)
                w.append(time.perf_counter() - started)
                c.append(time.process_time() - started_cpu)
            wall[name].append(statistics.median(w) * 1e3)
            cpu[name].append(statistics.median(c) * 1e3)
    return {
        name: {"wall_ms": round(statistics.median(wall[name]), 3),
               "cpu_ms": round(statistics.median(cpu[name]), 3)}
        for name in steps
    }  # fmt: skip


def _sync(fn: Callable[[int], object]) -> Step:
    async def step(i: int) -> object:
        return fn(i)

    return step


async def _in_process(ctx: Context) -> dict[str, Any]:
    from anomaly_api.api.body import _columnar_batch
    from anomaly_api.service.answers import ColumnarBatchAnswer
    from anomaly_api.service.cache import prediction_keys
    from anomaly_api.service.dataplane import ScoredBatch, _filled_ids
    from anomaly_api.service.prediction_columns import PredictionCodec

    async with AsyncExitStack() as stack:
        app, state = await _served(stack, ctx.artifacts)
        dataplane, settings = state["dataplane"], state["settings"]
        predictor = dataplane.require_ready()
        cache = dataplane.runtime.cache
        codec = PredictionCodec(len(predictor.detector_names), predictor.n_features)
        count = ctx.size(4, 60)
        bodies = [batch_body(i) for i in range(count)]  # made before timing, as a client does
        parsed = [orjson.loads(body) for body in bodies]
        rows = [r for r in (_columnar_batch(data, settings) for data in parsed) if r is not None]
        matrices = [r.rows for r in rows if isinstance(r.rows, np.ndarray)]
        assert len(matrices) == count, "the bench's bodies take the vectorised path"
        keys = [prediction_keys(settings.cache_prefix, predictor.version, X) for X in matrices]
        never_stored = [prediction_keys("bench:miss:", predictor.version, X) for X in matrices]
        scorer = predictor._scorer  # the service's own scorer: the compiled kernel
        scores = [scorer.detector_scores(X) for X in matrices]
        columns = [predictor.score(X) for X in matrices]

        def answer(i: int) -> ColumnarBatchAnswer:
            return ColumnarBatchAnswer(
                predictions=columns[i % count],
                observation_ids=_filled_ids(rows[i % count].observation_ids, 1000),
                feature_names=predictor.feature_names,
                detector_names=predictor.detector_names,
                thresholds=predictor.thresholds,
                model_version=predictor.version,
                inference_ms=12.345,
                top_k=None,
            )

        async def store(i: int) -> None:
            blobs = codec.encode(columns[i % count])
            await cache.set_many(dict(zip(keys[i % count], blobs, strict=True)))

        def report(i: int) -> None:
            cols = columns[i % count]
            n_anomalies = int(np.count_nonzero(cols.is_anomaly))
            dataplane.report(ScoredBatch(predictor.version, matrices[i % count], cols,
                                         n_anomalies, 0.01))  # fmt: skip

        harness = HttpHarness(app, state)
        rounds, per_round = ctx.size(2, 5), ctx.size(2, 12)
        fresh = iter([raw_post("/predict/batch", batch_body(100_000 + j))
                      for j in range(rounds * per_round + 1)])  # fmt: skip
        answered = (await harness.request(next(fresh))).partition(b"\r\n\r\n")[2]

        async def echo_app(scope: Any, receive: Any, send: Any) -> None:
            """Reads the body as the service does and sends an answer of the same size."""
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answered)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": answered})

        echo = HttpHarness(echo_app, {})
        steps: dict[str, Step] = {
            "uvicorn: receive the body, send a same-size answer (an app that does nothing)": (
                lambda i: echo.request(raw_post("/predict/batch", bodies[i % count]))
            ),
            "parse (orjson.loads)": _sync(lambda i: orjson.loads(bodies[i % count])),
            "validate into a float64 matrix (_columnar_batch)": _sync(
                lambda i: _columnar_batch(parsed[i % count], settings)
            ),
            "cache keys (blake2b a row)": _sync(
                lambda i: prediction_keys(
                    settings.cache_prefix, predictor.version, matrices[i % count]
                )
            ),
            "cache look-up, misses": lambda i: cache.get_many(never_stored[i % count]),
            "thread hop (empty function)": lambda i: anyio.to_thread.run_sync(lambda: None),
            "kernel (detector_scores)": _sync(
                lambda i: scorer.detector_scores(matrices[i % count])
            ),
            "decision rule, severity, contributions (combine)": _sync(
                lambda i: predictor.model.combine(scores[i % count], matrices[i % count])
            ),
            "Predictor.score (kernel + combine + checks)": _sync(
                lambda i: predictor.score(matrices[i % count])
            ),
            "cache store (encode + set_many)": store,
            "ids + answer JSON (to_json)": _sync(lambda i: answer(i).to_json()),
            "hooks (metrics, drift, alarms)": _sync(report),
            "whole request through uvicorn, in memory": lambda _i: harness.request(next(fresh)),
        }
        timed = await _timed(steps, rounds, per_round)
        whole = timed["whole request through uvicorn, in memory"]
        parts = [k for k in steps if not k.startswith(("whole", "Predictor.score"))]
        for unit in ("wall_ms", "cpu_ms"):
            whole[f"not in the steps above, {unit}"] = round(
                whole[unit] - sum(timed[k][unit] for k in parts), 3
            )
        return {"answer_bytes": len(answered), "body_bytes": len(bodies[0]), "steps": timed}


def _over_http(ctx: Context) -> dict[str, Any]:
    """One keep-alive client posting new 1,000-row bodies to a served process; also the
    server's CPU per request (from /proc), to set beside the whole request's CPU in process."""
    split: dict[str, list[float]] = {"send_ms": [], "wait_ms": [], "read_ms": [], "total_ms": [],
                                     "server_inference_ms": []}  # fmt: skip
    bodies = [batch_body(70_000 + i) for i in range(ctx.size(5, 200) + 5)]
    with (
        service_server("batch", service_env(ctx.artifacts, "fast")) as server,
        connect(server.port) as conn,
    ):
        cpu_before = 0.0
        for i, body in enumerate(bodies):
            if i == 5:  # after warm-up
                cpu_before = cpu_s(server.process.pid)
            started = time.perf_counter()
            conn.request("POST", "/predict/batch", body, {"Content-Type": "application/json"})
            sent = time.perf_counter()
            response = conn.getresponse()
            head = time.perf_counter()
            payload = response.read()
            done = time.perf_counter()
            if response.status != 200:
                raise RuntimeError(f"answered {response.status}: {payload[:200]!r}")
            if i >= 5:  # after warm-up
                split["send_ms"].append((sent - started) * 1e3)
                split["wait_ms"].append((head - sent) * 1e3)
                split["read_ms"].append((done - head) * 1e3)
                split["total_ms"].append((done - started) * 1e3)
                split["server_inference_ms"].append(orjson.loads(payload)["inference_ms"])
        server_cpu_ms = (cpu_s(server.process.pid) - cpu_before) / (len(bodies) - 5) * 1e3
    return {**{f"{k.removesuffix('_ms')}_p50_ms": round(statistics.median(v), 3)
               for k, v in split.items()},
            "server_cpu_ms_per_request": round(server_cpu_ms, 3)}  # fmt: skip


def batch_steps(ctx: Context) -> dict[str, Any]:
    """A 1,000-row ``/predict/batch`` step by step in process (wall and CPU ms), then end to
    end over loopback with the client's split."""
    steps = asyncio.run(_in_process(ctx))
    return {"cost": {"batch_1000_rows": {**steps, "over_http": _over_http(ctx)}}}
