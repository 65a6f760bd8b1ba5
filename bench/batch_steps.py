"""Part ``cost.batch``: one 1,000-row ``/predict/batch`` step by step in process (wall and
CPU ms), then over loopback with the client's split (protocol: docs/performance.md)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import orjson

from bench.cost import HttpHarness, _served, raw_post
from bench.data import batch_body
from bench.load import connect
from bench.servers import cpu_s, service_env, service_server
from bench.timing import Variant, async_rounds

if TYPE_CHECKING:
    from bench.__main__ import Context


def _sync(fn: Callable[[int], object]) -> Variant:
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
        steps: dict[str, Variant] = {
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
        timed = {
            name: {"wall_ms": round(wall * 1e3, 3), "cpu_ms": round(cpu * 1e3, 3)}
            for name, (wall, cpu) in (
                await async_rounds(steps, rounds=rounds, per_round=per_round, start=50_000)
            ).items()
        }
        whole = timed["whole request through uvicorn, in memory"]
        parts = [k for k in steps if not k.startswith(("whole", "Predictor.score"))]
        for unit in ("wall_ms", "cpu_ms"):
            whole[f"not in the steps above, {unit}"] = round(
                whole[unit] - sum(timed[k][unit] for k in parts), 3
            )
        return {"answer_bytes": len(answered), "body_bytes": len(bodies[0]), "steps": timed}


def _over_http(ctx: Context) -> dict[str, Any]:
    """One keep-alive client posting new bodies (after 5 of warm-up); the server's CPU too."""
    bodies = [batch_body(70_000 + i) for i in range(ctx.size(5, 200) + 5)]
    times: list[tuple[float, ...]] = []
    with (
        service_server("batch", service_env(ctx.artifacts, "fast")) as server,
        connect(server.port) as conn,
    ):
        for i, body in enumerate(bodies):
            if i == 5:
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
            inference_s = orjson.loads(payload)["inference_ms"] / 1e3
            times.append((sent - started, head - sent, done - head, done - started, inference_s))
        server_cpu_ms = (cpu_s(server.process.pid) - cpu_before) / (len(bodies) - 5) * 1e3
    names = ("send", "wait", "read", "total", "server_inference")
    return {
        **{f"{name}_p50_ms": round(statistics.median(t[j] for t in times[5:]) * 1e3, 3)
           for j, name in enumerate(names)},
        "server_cpu_ms_per_request": round(server_cpu_ms, 3),
    }  # fmt: skip


def batch_steps(ctx: Context) -> dict[str, Any]:
    """The part (see the module doc)."""
    steps = asyncio.run(_in_process(ctx))
    return {"cost": {"batch_1000_rows": {**steps, "over_http": _over_http(ctx)}}}
