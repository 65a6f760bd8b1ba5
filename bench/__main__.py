"""``python -m bench [--smoke] [--out FILE]``: the whole benchmark in one run.

Starts each server in turn (never two at once) on loopback with one uvicorn worker,
drives it with wrk or a keep-alive client for a bounded time, stops it, and writes
one JSON file plus a printed table. Full run: about five minutes; ``--smoke``: under a
minute, same keys, numbers meaningless (CI runs it so the suite cannot rot).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.testing import HOST
from bench.hotpath import batches_in_background, json_parsers, predictor_costs
from bench.inprocess import batch_split, model_scoring
from bench.lag_probe import PATH as LAG_PATH
from bench.load import batch_body, post_many, run_wrk
from bench.report import CONNECTIONS, ratios, table, targets, write_results
from bench.servers import ROOT, Server, redis_server, uvicorn_server

N_TRAIN = 10_000
N_FEATURES = 8
SERVICE_APP = "anomaly_api.api.app:create_app"
BACKENDS = ("fast", "numpy", "sklearn")
"""Values of ANOMALY_INFERENCE_BACKEND: the compiled C kernel, NumPy, scikit-learn."""
BARE_APP = "bench.bare_app:app"
PROBED_APP = "bench.lag_probe:create_probed_app"
"""The service plus the bench-only event-loop lag / GC probe (``--lag-probe``)."""


def prepare_artifact(artifacts_dir: Path) -> None:
    """Fit the default-size ensemble (100 trees, k=20) on 10,000 correlated readings."""
    from anomaly_api.artifacts import build_manifest, save_artifact, set_latest
    from anomaly_api.detection import AnomalyEnsemble

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(N_FEATURES, N_FEATURES)) / np.sqrt(N_FEATURES)
    X = rng.normal(size=(N_TRAIN, N_FEATURES)) @ mixing
    model = AnomalyEnsemble().fit(X)
    names = [f"sensor_{i}" for i in range(N_FEATURES)]
    manifest = build_manifest(
        model, names, X, version="bench-1", created_at=datetime.now(UTC),
        source="bench: correlated gaussian seed=0", n_rows=N_TRAIN,
    )  # fmt: skip
    from anomaly_api.training.references import build_references, reference_attachments

    attachments = reference_attachments(build_references(model, names, X))
    save_artifact(model, manifest, artifacts_dir, attachments=attachments)  # drift reference too
    set_latest(artifacts_dir, "bench-1")


def service_env(artifacts_dir: Path, backend: str, redis_url: str | None = None) -> dict[str, str]:
    """Environment of the service under test."""
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts_dir),
        "ANOMALY_INFERENCE_BACKEND": backend,
        "ANOMALY_LOG_LEVEL": "WARNING",
    }
    if redis_url is not None:
        env["ANOMALY_REDIS_URL"] = redis_url
    return env


def server_facts(server: Server, more_starts: list[float]) -> dict[str, Any]:
    """Start-up cost and memory of one server (start time: median over all its starts)."""
    starts = [server.start_to_ready_s, *more_starts]
    return {
        "start_to_ready_s": statistics.median(starts),
        "start_to_ready_all_s": starts,
        "rss_ready_mb": server.rss_ready_mb,
        "rss_after_load_mb": server.rss_mb(),
    }


def start_times(env: dict[str, str], count: int) -> list[float]:
    """Start-to-ready time of ``count`` fresh starts of the service."""
    times = []
    for _ in range(count):
        with service_server("restart", env) as server:
            times.append(server.start_to_ready_s)
    return times


def service_server(
    name: str, env: dict[str, str], *, lag_probe: bool = False
) -> AbstractContextManager[Server]:
    """The service, built by its app factory, under uvicorn with one worker (with the
    lag probe's extra route when ``lag_probe``)."""
    app = PROBED_APP if lag_probe else SERVICE_APP
    return uvicorn_server(name, app, env, factory=True, ready_path="/health/ready")


def lag_window(server: Server) -> dict[str, Any]:
    """The probe's recording since its previous call (and a new window from now)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        conn.request("GET", LAG_PATH)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{LAG_PATH} answered {response.status}: {payload[:200]!r}")
        window: dict[str, Any] = orjson.loads(payload)
        return window
    finally:
        conn.close()


class Run:
    """One benchmark run: its budgets, its model and the results gathered so far."""

    def __init__(self, smoke: bool, workdir: Path, *, lag_probe: bool = False) -> None:
        self.smoke = smoke
        self.lag_probe = lag_probe
        self.workdir = workdir
        self.duration = 1.0 if smoke else 10.0  # each wrk run at 1/16/64 connections
        self.short = 1.0 if smoke else 5.0  # each cache hit/miss run
        self.restarts = 0 if smoke else 2  # extra starts for the start-time median
        self.artifacts_dir = workdir / "artifacts"
        self.bodies = [batch_body(i) for i in range(5 if smoke else 300)]
        self.results: dict[str, Any] = {"http_predict": {}, "cache": {}, "servers": {}}

    def wrk(self, server: Server, connections: int, duration: float, *, unique: bool) -> Any:
        """One wrk run against ``/predict``, as a dict (with the lag probe's window of the
        run under ``lag_probe`` when it is on and the server is the service)."""
        probed = self.lag_probe and server.name != "bare"
        if probed:
            lag_window(server)  # starts the probe, or drops what came before this run
        result = run_wrk(
            server.port, "/predict", connections, duration, unique=unique, workdir=self.workdir
        ).as_dict()
        if probed:
            result["lag_probe"] = lag_window(server)
        return result

    def in_process(self) -> None:
        """Model scoring alone and the batch split, without HTTP."""
        from anomaly_api.artifacts import load_artifact
        from anomaly_api.detection.fast import compile_scorer

        prepare_artifact(self.artifacts_dir)
        model = load_artifact(self.artifacts_dir).model
        scorer = compile_scorer(model)
        numpy_scorer = compile_scorer(model, "numpy")
        probe = np.random.default_rng(2).normal(size=(1000, N_FEATURES))
        self.results["model_scoring"] = model_scoring(
            model, scorer, numpy_scorer, probe, smoke=self.smoke
        )
        split = batch_split(self.bodies[0], model, scorer, smoke=self.smoke)
        self.results["batch"] = {"split": split}
        self.results["hot_path"] = {
            "predictor_one_row": predictor_costs(self.artifacts_dir, smoke=self.smoke),
            "json_parse_batch": json_parsers(self.bodies[0], smoke=self.smoke),
        }

    def bare(self) -> None:
        """The ceiling: the bare endpoint at 1/16/64 connections."""
        with uvicorn_server("bare", BARE_APP, {}, factory=False, ready_path="/health/ready") as s:
            self.results["http_predict"]["bare"] = {
                str(c): self.wrk(s, c, self.duration, unique=True) for c in CONNECTIONS
            }
            self.results["servers"]["bare"] = server_facts(s, [])

    def service(self, backend: str) -> None:
        """The service on ``backend``: /predict at 1/16/64 connections, batches, cache."""
        env = service_env(self.artifacts_dir, backend)
        with service_server(backend, env, lag_probe=self.lag_probe) as s:
            self.results["http_predict"][backend] = {
                str(c): self.wrk(s, c, self.duration, unique=True) for c in CONNECTIONS
            }
            count = len(self.bodies) if backend != "sklearn" else max(2, len(self.bodies) // 5)
            self.results["batch"][backend] = post_many(
                s.port, "/predict/batch", self.bodies[:count]
            )
            if backend == "fast":
                self.results["cache"]["in-process"] = self.cache_runs(s)
            facts = server_facts(s, [])
        more = start_times(env, self.restarts)
        starts = [*facts["start_to_ready_all_s"], *more]
        facts.update(start_to_ready_s=statistics.median(starts), start_to_ready_all_s=starts)
        self.results["servers"][backend] = facts

    def offload(self) -> None:
        """Event loop or thread pool: single rows always offloaded, batches never offloaded.

        Default: fewer than ``offload_min_rows`` (64) rows run on the event loop, larger
        batches in a worker thread. Compared here: every request in a thread (single-row
        throughput at 64 connections), and batches on the loop (how long a 1,000-row batch
        stalls single-row requests, as /predict p99 at one connection while batches run).
        """
        hot = self.results["hot_path"]
        env = service_env(self.artifacts_dir, "fast")
        with service_server("offload-all", {**env, "ANOMALY_OFFLOAD_MIN_ROWS": "1"}) as s:
            hot["single_rows_in_thread_c64"] = self.wrk(s, 64, self.duration, unique=True)
        hot["single_rows_on_loop_c64"] = self.results["http_predict"]["fast"]["64"]
        for name, offload in (("batches_in_thread", None), ("batches_on_loop", "100000")):
            extra = {} if offload is None else {"ANOMALY_OFFLOAD_MIN_ROWS": offload}
            with (
                service_server(name, {**env, **extra}) as s,
                batches_in_background(s.port) as stats,
            ):
                run = self.wrk(s, 1, self.short, unique=True)
            # Read after the background client has finished its last batch.
            hot[f"single_row_while_{name}"] = {**run, "batches_done": stats["batches"]}

    def cache_runs(self, server: Server) -> dict[str, Any]:
        """Latency of /predict at one connection when every request misses, or hits."""
        return {
            kind: self.wrk(server, 1, self.short, unique=kind == "miss") for kind in ("miss", "hit")
        }

    def redis(self) -> None:
        """Cache hit and miss with a throwaway Redis as the cache."""
        with (
            redis_server() as url,
            service_server("redis", service_env(self.artifacts_dir, "fast", url)) as s,
        ):
            self.results["cache"]["redis"] = self.cache_runs(s)
            self.results["servers"]["fast+redis"] = server_facts(s, [])

    def all(self) -> dict[str, Any]:
        """Every measurement, one server at a time, then ratios and targets."""
        self.in_process()
        self.bare()
        for backend in BACKENDS:
            self.service(backend)
        self.redis()
        self.offload()
        self.results["ratios"] = ratios(self.results)
        self.results["targets"] = targets(self.results)
        return self.results


def metadata(smoke: bool) -> dict[str, Any]:
    """Where and when: the numbers only mean something next to the machine's load."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "mode": "smoke" if smoke else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="quick pass; numbers meaningless")
    parser.add_argument(
        "--lag-probe",
        action="store_true",
        help="record event-loop lag and GC pauses in the service during each wrk run",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file (default: bench/results/latest.json; smoke: in the temp dir)",
    )
    args = parser.parse_args(argv)
    default = (
        Path(tempfile.gettempdir()) / "anomaly-bench-smoke.json"
        if args.smoke
        else ROOT / "bench" / "results" / "latest.json"
    )
    out: Path = args.out or default
    meta = metadata(args.smoke)
    meta["lag_probe"] = args.lag_probe
    with tempfile.TemporaryDirectory(prefix="anomaly-bench-") as tmp:
        results = Run(args.smoke, Path(tmp), lag_probe=args.lag_probe).all()
    meta["load_average_after"] = os.getloadavg()
    results = {"meta": meta, **results}
    write_results(out, results, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
