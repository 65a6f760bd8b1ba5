"""Section ``predict``: model scoring in process, then ``/predict`` and ``/predict/batch`` over
HTTP for the bare endpoint and the service on each backend, the cache, start and memory,
and where requests run (event loop or thread pool); then both event loops and two workers."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from bench.data import N_FEATURES, batch_body, one_row_body, small_fleet
from bench.load import connect, post_many, run_wrk, send
from bench.report import ratio
from bench.servers import (
    WORKER_APP,
    Server,
    bare_server,
    cpu_s,
    redis_server,
    service_env,
    service_server,
)
from bench.timing import median_ms

if TYPE_CHECKING:
    from bench.__main__ import Context

BACKENDS = ("fast", "numpy", "sklearn")
"""Values of ANOMALY_INFERENCE_BACKEND: the compiled C kernel, NumPy, scikit-learn."""
CONNECTIONS = (1, 16, 64)
LOOP_CONNECTIONS = (16, 64, 128, 256)


def served(scorer: Any, X: np.ndarray) -> object:
    """What the service runs per call: the scorer's ``explain`` (scores, the decision rule,
    the contributions; one kernel call on the compiled backend)."""
    return scorer.explain(X)


def inprocess(ctx: Context) -> dict[str, Any]:
    """Scoring for 1/100/1,000 rows per backend against scikit-learn; a batch's split."""
    from anomaly_api.api.schemas import PredictBatchRequest
    from anomaly_api.artifacts import load_artifact
    from anomaly_api.detection.fast import compile_scorer

    model = load_artifact(ctx.artifacts).model
    fast, numpy = compile_scorer(model), compile_scorer(model, "numpy")
    X = np.random.default_rng(2).normal(size=(1000, N_FEATURES))
    budget = ctx.size(0.5, 10.0)
    scoring: dict[str, Any] = {}
    for n_rows in (1, 100, 1000):
        rows = np.ascontiguousarray(X[:n_rows])
        repeats = ctx.size(20, 2000 if n_rows == 1 else 200)
        fast_ms, numpy_ms = (median_ms(partial(served, scorer, rows), repeats, budget)
                             for scorer in (fast, numpy))  # fmt: skip
        reference = median_ms(partial(model.explain, rows), repeats // 4, budget)
        scoring[str(n_rows)] = {
            "fast_ms": fast_ms, "numpy_ms": numpy_ms, "reference_ms": reference,
            "speedup": reference / fast_ms, "numpy_speedup": reference / numpy_ms,
        }  # fmt: skip
    body = batch_body(0)
    data = orjson.loads(body)
    features = [o.features for o in PredictBatchRequest.model_validate(data).observations]
    matrix = np.array(features, dtype=np.float64)
    repeats = ctx.size(10, 200)
    split = {
        "parse_ms": median_ms(lambda: orjson.loads(body), repeats, 5.0),
        "validate_ms": median_ms(lambda: PredictBatchRequest.model_validate(data), repeats, 5.0),
        "to_matrix_ms": median_ms(lambda: np.array(features, dtype=np.float64), repeats, 5.0),
        "score_fast_ms": median_ms(partial(served, fast, matrix), repeats),
        "score_reference_ms": median_ms(lambda: model.explain(matrix), repeats // 4, 5.0),
    }
    return {"model_scoring": scoring, "batch": {"split": split}}


def wrk(ctx: Context, server: Server, connections: int, seconds: float, **kw: Any) -> Any:
    """One wrk run against ``/predict``."""
    return run_wrk(server.port, "/predict", connections, seconds, workdir=ctx.workdir, **kw)


def facts(server: Server) -> dict[str, Any]:
    """Start-up cost and memory of one server."""
    return {
        "start_to_ready_s": server.start_to_ready_s,
        "start_to_ready_all_s": [server.start_to_ready_s],
        "rss_ready_mb": server.rss_ready_mb,
        "rss_after_load_mb": server.rss_mb(),
    }


def over_http(ctx: Context) -> dict[str, Any]:
    """The bare endpoint and every backend, batches, the cache, start and RSS."""
    seconds, short = ctx.size(1.0, 10.0), ctx.size(1.0, 5.0)
    bodies = [batch_body(i) for i in range(ctx.size(5, 300))]
    out: dict[str, Any] = {"http_predict": {}, "batch": {}, "cache": {}, "servers": {}}
    with bare_server() as s:
        out["http_predict"]["bare"] = {str(c): wrk(ctx, s, c, seconds) for c in CONNECTIONS}
        out["servers"]["bare"] = facts(s)

    def cache_runs(s: Server) -> dict[str, Any]:
        return {kind: wrk(ctx, s, 1, short, unique=kind == "miss") for kind in ("miss", "hit")}

    for backend in BACKENDS:
        env = service_env(ctx.artifacts, backend)
        with service_server(backend, env) as s:
            out["http_predict"][backend] = {str(c): wrk(ctx, s, c, seconds) for c in CONNECTIONS}
            count = len(bodies) if backend != "sklearn" else max(2, len(bodies) // 5)
            out["batch"][backend] = post_many(s.port, "/predict/batch", bodies[:count])
            if backend == "fast":
                out["cache"]["in-process"] = cache_runs(s)
            first = facts(s)
        starts = [s.start_to_ready_s, *restarts(env, ctx.size(0, 2))]
        out["servers"][backend] = {
            **first,
            "start_to_ready_s": statistics.median(starts),
            "start_to_ready_all_s": starts,
        }
    with (
        redis_server() as url,
        service_server("redis", service_env(ctx.artifacts, "fast", url, cache="redis")) as s,
    ):
        out["cache"]["redis"] = cache_runs(s)
        out["servers"]["fast+redis"] = facts(s)
    return out


def restarts(env: dict[str, str], count: int) -> tuple[float, ...]:
    """Start-to-ready times of ``count`` more starts of the service."""
    times = []
    for _ in range(count):
        with service_server("restart", env) as server:
            times.append(server.start_to_ready_s)
    return tuple(times)


def by_name(ctx: Context) -> dict[str, Any]:
    """``/predict`` against the same model by name, 64 connections, the routes interleaved."""
    root = ctx.workdir / "fleet-artifacts"
    if not root.exists():
        shutil.copytree(ctx.artifacts, root)
        shutil.copytree(ctx.artifacts, root / "models" / "bench")
    with service_server("by-name", service_env(root, "fast")) as s:
        first_ms = first_request_ms(s, "bench")  # not what the routes' runs measure
        warm = interleaved(ctx, s, ("/predict", "/models/default/predict", "/models/bench/predict"))
    return {"by_name": {"first_request_cold_ms": first_ms, **warm}}


def first_request_ms(server: Server, name: str) -> float:
    """Wall time of one ``/predict`` by name on a new connection (a cold model's: its load)."""
    with connect(server.port) as conn:
        started = time.perf_counter()
        send(conn, f"/models/{name}/predict", orjson.dumps({"features": [0.5] * N_FEATURES}))
        return (time.perf_counter() - started) * 1000.0


def interleaved(ctx: Context, s: Server, paths: tuple[str, ...]) -> dict[str, Any]:
    """wrk at 64 connections on each path in turn: requests/s and server CPU per request."""
    runs: dict[str, list[float]] = {path: [] for path in paths}
    cpu: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(ctx.option("rounds", ctx.size(1, 3))):
        for path in paths:
            before = cpu_s(s.process.pid)
            run = run_wrk(s.port, path, 64, ctx.size(1.0, 10.0), workdir=ctx.workdir)
            assert run["errors"] == 0, (path, run)
            runs[path].append(run["requests_per_s"])
            cpu[path].append((cpu_s(s.process.pid) - before) / run["requests"] * 1e6)
    rps = {path: statistics.median(r) for path, r in runs.items()}
    us = {path: statistics.median(c) for path, c in cpu.items()}
    return {p: {"requests_per_s": rps[p], "runs": runs[p], "vs_predict": rps[p] / rps[paths[0]],
                "server_cpu_us_per_request": us[p], "cpu_vs_predict": us[p] / us[paths[0]]}
            for p in paths}  # fmt: skip


def fleet(ctx: Context) -> dict[str, Any]:
    """``models`` small models, one server, a ``budget_mb`` holding some (docs/many-models.md)."""
    count = ctx.option("models", ctx.size(8, 1000))
    budget = ctx.option("budget_mb", ctx.size(4.0, 256.0))
    root = small_fleet(ctx.workdir / f"fleet-{count}", count, ctx.size(300, 1000))
    names = [f"m{i:04d}" for i in range(count)]
    warm_path = f"/models/{names[-1]}/predict"
    env = service_env(root, "fast") | {"ANOMALY_MODEL_MEMORY_MB": str(budget)}
    with service_server("fleet", env) as s:

        def call(path: str, body: bytes | None = None) -> bytes:  # idle connections get closed
            with connect(s.port) as conn:
                return send(conn, path, body)

        def listings(when: str) -> dict[str, float]:
            index = partial(call, "/v2/repository/index", b"{}")
            return {f"models_{when}_ms": median_ms(partial(call, "/models"), 20),
                    f"index_{when}_ms": median_ms(index, 20)}  # fmt: skip

        call("/predict", one_row_body(0))
        baseline, fds = s.rss_mb(), [len(os.listdir(f"/proc/{s.process.pid}/fd"))]
        out: dict[str, Any] = {"models": count, "budget_mb": budget, **listings("none_loaded")}
        cold, rss, cpu = [], [baseline], cpu_s(s.process.pid)
        for i, name in enumerate(names + names[: count // 2]):
            cold.append(first_request_ms(s, name))
            if i % max(count // 50, 1) == 0:
                rss.append(s.rss_mb())
        fds.append(len(os.listdir(f"/proc/{s.process.pid}/fd")))
        out["cold_server_cpu_ms_per_request"] = (cpu_s(s.process.pid) - cpu) / len(cold) * 1e3
        listed = orjson.loads(call("/models"))["models"]
        out |= listings("after") | {"loaded_after": sum(bool(m["loaded_versions"]) for m in listed)}
        out["warm"] = interleaved(ctx, s, ("/predict", warm_path))
    return {"fleet": out | {
        "rss_baseline_mb": baseline, "rss_samples_mb": rss, "rss_growth_mb": max(rss) - baseline,
        "rss_growth_vs_budget": (max(rss) - baseline) / budget, "open_fds_before_after": fds,
        "cold_requests": len(cold), "cold_first_request_p50_ms": statistics.median(cold),
        "cold_first_request_p95_ms": sorted(cold)[int(0.95 * (len(cold) - 1))],
        "warm_cpu_vs_predict": out["warm"][warm_path]["cpu_vs_predict"],
    }}  # fmt: skip


def brief(ctx: Context, server: Server, connections: int) -> dict[str, float]:
    """Throughput, p50, p99, the slowest request and errors of one wrk run against ``/predict``."""
    run = run_wrk(server.port, "/predict", connections, ctx.size(1.0, 5.0), workdir=ctx.workdir)
    return {k: run[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "max_ms", "errors")}


def scaling(ctx: Context) -> dict[str, Any]:
    """Both event loops at 16-256 connections, one worker; then two workers at 64 connections
    (and one to compare), on a Redis for streams with each worker's own prediction cache."""
    env = service_env(ctx.artifacts, "fast")
    loops: dict[str, Any] = {}
    for loop in ("asyncio", "uvloop"):
        for name, server in (("bare", bare_server(loop=loop)),
                             ("ours", service_server("ours", env, loop=loop))):  # fmt: skip
            with server as s:
                runs = {str(c): brief(ctx, s, c) for c in LOOP_CONNECTIONS}
            loops.setdefault(loop, {})[name] = runs
    two: dict[str, Any] = {}
    with redis_server() as url, tempfile.TemporaryDirectory() as metrics:
        shared = service_env(ctx.artifacts, "fast", url)
        multi = {**shared, "PROMETHEUS_MULTIPROC_DIR": metrics}
        servers = {
            "bare_1": bare_server(),
            "bare_2": bare_server(workers=2),
            "ours_1": service_server("ours-1", shared),
            "ours_2": service_server("ours-2", multi, app=WORKER_APP, workers=2),
        }
        for name, server in servers.items():
            with server as s:
                two[name] = brief(ctx, s, 64)
    rps = {name: run["requests_per_s"] for name, run in two.items()}
    two["ours_2_vs_bare_2"] = ratio(rps["ours_2"], rps["bare_2"])
    two["ours_2_vs_ours_1"] = ratio(rps["ours_2"], rps["ours_1"])
    two["bare_2_vs_bare_1"] = ratio(rps["bare_2"], rps["bare_1"])
    return {"scaling": {"loops": loops, "workers_c64": two}}


PARTS = {
    "inprocess": inprocess,
    "http": over_http,
    "scaling": scaling,
    "by_name": by_name,
    "fleet": fleet,
}
