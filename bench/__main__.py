"""``python -m bench [--smoke] [--only SECTIONS] [--out FILE]``: every open performance
target of issues 10-13, side by side in one run.

Starts each server in turn on loopback with one uvicorn worker, drives it with wrk or a
keep-alive client for a bounded time, stops it, and writes one JSON file, the same tables
as Markdown beside it (``.md``) and prints them. Sections, in this order:

- ``predict`` (issue 13): model scoring in process; ``/predict`` at 1/16/64 connections
  for a bare FastAPI endpoint and the service on each backend; 1,000-row batches; the
  cache in process and in Redis; start time and RSS; event loop vs thread pool;
- ``streams`` (issue 10): ``/streams/{id}/readings`` at 64 connections with the
  in-process store and with Redis, as ratios to ``/predict`` measured the same way in the
  same run; ``/predict/window`` with 1,000 readings; the bytes one stream holds;
- ``bulk`` (issue 11): local bulk scoring of a Parquet file on the default model, the same
  file on a 2-worker Dask ``LocalCluster``, the client's ``predict_many`` against the
  server's own batch throughput;
- ``drift`` (issue 12): ``/predict`` at 64 connections with drift tracking on and off,
  in interleaved pairs.

Full run: about 10-15 minutes on a quiet 2-core machine; ``--smoke``: 2-3 minutes, same
keys, numbers meaningless (CI runs it so the suite cannot rot).
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
import time
import traceback
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.testing import HOST
from bench import bulk, drift_overhead, streams, streams_http
from bench.hotpath import batches_in_background, json_parsers, predictor_costs
from bench.inprocess import batch_split, model_scoring
from bench.lag_probe import PATH as LAG_PATH
from bench.load import batch_body, post_many, run_wrk
from bench.models import N_FEATURES, prepare_artifact, prepare_time_aware
from bench.report import CONNECTIONS, ratios, table, targets, write_results
from bench.servers import ROOT, Server, redis_server, service_env, uvicorn_server
from bench.servers import service_server as _service_server

SECTIONS = ("predict", "streams", "bulk", "drift")
BACKENDS = ("fast", "numpy", "sklearn")
"""Values of ANOMALY_INFERENCE_BACKEND: the compiled C kernel, NumPy, scikit-learn."""
BARE_APP = "bench.bare_app:app"
PROBED_APP = "bench.lag_probe:create_probed_app"
"""The service plus the bench-only event-loop lag / GC probe (``--lag-probe``)."""


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
    if lag_probe:
        return _service_server(name, env, app=PROBED_APP)
    return _service_server(name, env)


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


class Budget:
    """Sizes and durations of one run: full (quiet machine, every target) or smoke."""

    def __init__(self, smoke: bool) -> None:
        self.duration = 1.0 if smoke else 10.0  # each wrk run at 1/16/64 connections
        self.short = 1.0 if smoke else 5.0  # each cache hit/miss run
        self.restarts = 0 if smoke else 2  # extra starts for the start-time median
        self.batches = 5 if smoke else 300  # 1,000-row bodies posted per backend
        self.stream_s = 1.0 if smoke else 10.0  # each streams wrk run (64 connections)
        self.windows = 3 if smoke else 40  # 1,000-reading windows posted per mode
        self.time_aware_rows = 3000 if smoke else 10_000  # the time-aware model's training
        self.state_streams = 200 if smoke else 2000  # streams filled to measure their bytes
        self.bulk_rows = 10_000 if smoke else 500_000  # rows of the bulk file
        self.chunk_rows = 2_500 if smoke else 100_000
        self.client_rows = 2_000 if smoke else 100_000  # rows through predict_many
        self.drift_pairs = 2 if smoke else 6  # interleaved drift on/off pairs
        self.drift_s = 1.0 if smoke else 8.0  # each drift wrk run

    def as_dict(self) -> dict[str, float]:
        """For the run's metadata."""
        return dict(vars(self))


class Run:
    """One benchmark run: its budgets, its model and the results gathered so far."""

    def __init__(
        self,
        smoke: bool,
        workdir: Path,
        *,
        lag_probe: bool = False,
        sections: tuple[str, ...] = SECTIONS,
    ) -> None:
        self.smoke = smoke
        self.lag_probe = lag_probe
        self.workdir = workdir
        self.sections = sections
        self.budget = Budget(smoke)
        self.duration, self.short = self.budget.duration, self.budget.short
        self.restarts = self.budget.restarts
        self.artifacts_dir = workdir / "artifacts"
        self.bodies = [batch_body(i) for i in range(self.budget.batches)]
        self.results: dict[str, Any] = {}

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

    def predict(self) -> None:
        """Issue 13's section: in process, the bare endpoint, each backend, Redis, offload."""
        self.results.update(http_predict={}, cache={}, servers={})
        self.in_process()
        self.bare()
        for backend in BACKENDS:
            self.service(backend)
        self.redis()
        self.offload()

    def streams(self) -> None:
        """Issue 10's section: stream endpoints over HTTP and the bytes of one stream."""
        budget, timeaware = self.budget, self.workdir / "time-aware"
        prepare_time_aware(timeaware, budget.time_aware_rows)
        measured = streams_http.measure(
            self.artifacts_dir, timeaware, budget.stream_s, budget.windows, self.workdir
        )
        measured["state_per_stream"] = streams.state_per_stream(budget.state_streams)
        self.results["streams"] = measured

    def bulk(self) -> None:
        """Issue 11's section: bulk scoring locally and on Dask, the client vs the server."""
        budget, root = self.budget, self.workdir / "bulk"
        root.mkdir()
        artifacts, data, warm = bulk.prepare(root, budget.bulk_rows, budget.chunk_rows)
        measured = bulk.engines(artifacts, data, warm, budget.bulk_rows, budget.chunk_rows, root)
        measured["client_vs_server"] = bulk.client_vs_server(artifacts, budget.client_rows)
        self.results["bulk"] = measured

    def drift(self) -> None:
        """Issue 12's section: /predict at 64 connections, drift on vs off, interleaved."""
        self.results["drift_overhead"] = drift_overhead.measure(
            self.budget.drift_pairs, self.budget.drift_s, self.workdir, self.artifacts_dir
        )

    def all(self) -> dict[str, Any]:
        """The chosen sections, one server at a time, then ratios and targets."""
        prepare_artifact(self.artifacts_dir)
        for section in self.sections:
            started, before = time.perf_counter(), set(self.results)
            try:
                getattr(self, section)()
            except Exception as exc:  # the other sections' numbers are still worth writing
                traceback.print_exc()
                for key in set(self.results) - before:  # no half-measured section
                    del self.results[key]
                self.results.setdefault("failed_sections", {})[section] = repr(exc)
            print(f"section {section}: {time.perf_counter() - started:.0f} s", flush=True)
        self.results["ratios"] = ratios(self.results)
        self.results["targets"] = targets(self.results)
        return self.results


def metadata(smoke: bool, sections: tuple[str, ...]) -> dict[str, Any]:
    """Where and when: the numbers only mean something next to the machine's load."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "mode": "smoke" if smoke else "full",
        "sections": list(sections),
        "budget": Budget(smoke).as_dict(),
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
        "--only",
        type=parse_sections,
        default=SECTIONS,
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file, with its .md beside it (default: bench/results/latest.json for a "
        "full run of every section; smoke or --only: in the temp dir)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    partial = args.smoke or args.only != SECTIONS
    default = (
        Path(tempfile.gettempdir()) / f"anomaly-bench-{'smoke' if args.smoke else 'partial'}.json"
        if partial
        else ROOT / "bench" / "results" / "latest.json"
    )
    out: Path = args.out or default
    meta = metadata(args.smoke, args.only)
    meta["lag_probe"] = args.lag_probe
    with tempfile.TemporaryDirectory(prefix="anomaly-bench-") as tmp:
        run = Run(args.smoke, Path(tmp), lag_probe=args.lag_probe, sections=args.only)
        results = run.all()
    meta["load_average_after"] = os.getloadavg()
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    results = {"meta": meta, **results}
    write_results(out, results, table(results), markdown=True)
    failed = results.get("failed_sections", {})
    for section, error in failed.items():
        print(f"section {section} failed: {error}", file=sys.stderr)
    return 1 if failed else 0


def parse_sections(text: str) -> tuple[str, ...]:
    """``--only``'s value: known section names, run in the benchmark's own order."""
    chosen = {name.strip() for name in text.split(",") if name.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(sorted(unknown)) or '(none)'}; "
            f"choose from {', '.join(SECTIONS)}"
        )
    return tuple(name for name in SECTIONS if name in chosen)


if __name__ == "__main__":
    sys.exit(main())
