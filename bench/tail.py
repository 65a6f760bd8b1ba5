"""A short, bounded look at the ``/predict`` p99 tail at 64 connections: ``python -m bench.tail``.

Alternates the bare endpoint and the service (``bench.lag_probe:create_probed_app``,
``fast`` backend, the bench's default-size model) for ``--reps`` wrk runs of
``--seconds`` each (default 2 x 5 s each, about a minute in all), and records next to each
run's throughput and latencies what the served process went through meanwhile:

* the lag probe's window (event-loop lag and GC pauses, see ``docs/lag-probe.md``);
* the process's CPU time and its involuntary context switches (``/proc/<pid>/status``:
  how often the kernel took the CPU away from it, for wrk or anything else);
* the service's own ``anomaly_http_request_duration_seconds`` histogram for ``/predict``
  (scraped from ``/metrics`` before and after): the time from the request reaching the
  app's outermost middleware to its answer being sent, so the wrk latency minus it is
  time spent before the app saw the request (in the kernel's socket buffers, uvicorn's
  parser, the event loop's queue) or in wrk itself;
* the machine's load average.

Writes ``bench/results/tail.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from anomaly_api.testing import HOST
from bench.__main__ import (
    BARE_APP,
    PROBED_APP,
    lag_window,
    prepare_artifact,
    service_env,
)
from bench.load import run_wrk
from bench.servers import ROOT, Server, uvicorn_server

OUT = ROOT / "bench" / "results" / "tail.json"


def process_counters(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and context switches of ``pid`` so far."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            fields[name] = float(value)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    fields["cpu_s"] = (int(stat[11]) + int(stat[12])) / ticks
    return fields


_BUCKET = re.compile(
    r'^anomaly_http_request_duration_seconds_bucket\{le="([^"]+)",method="POST",'
    r'route="/predict",status="200"\} ([0-9.e+]+)$',
    re.MULTILINE,
)


def app_latency_buckets(server: Server) -> dict[float, float]:
    """Cumulative counts of the service's ``/predict`` latency histogram, by upper bound."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {float(le): float(count) for le, count in _BUCKET.findall(text)}


def app_latency(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Requests of the run and the histogram bucket holding their p50 and p99 (upper bound, ms)."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts.get(math.inf, 0.0)
    out: dict[str, Any] = {"requests": total}
    for name, q in (("p50_le_ms", 0.5), ("p99_le_ms", 0.99)):
        bound = next((le for le, c in counts.items() if total and c >= q * total), math.inf)
        out[name] = bound * 1e3 if bound != math.inf else "inf"
    return out


def one_run(server: Server, seconds: float, workdir: Path, *, probed: bool) -> dict[str, Any]:
    """One wrk run at 64 connections with the process's counters (and the probe's window)."""
    if probed:
        lag_window(server)
        buckets = app_latency_buckets(server)
    before = process_counters(server.process.pid)
    result: dict[str, Any] = run_wrk(
        server.port, "/predict", 64, seconds, unique=True, workdir=workdir
    ).as_dict()
    after = process_counters(server.process.pid)
    if probed:
        result["lag_probe"] = lag_window(server)
        result["in_app_latency"] = app_latency(buckets, app_latency_buckets(server))
    delta = {name: round(after[name] - before[name], 3) for name in after}
    result["server_cpu_s"] = delta["cpu_s"]
    result["server_cpu_share"] = round(delta["cpu_s"] / seconds, 3)
    result["involuntary_switches"] = delta["nonvoluntary_ctxt_switches"]
    result["voluntary_switches"] = delta["voluntary_ctxt_switches"]
    result["load_average_after"] = os.getloadavg()[0]
    return result


def main() -> None:
    """Run the alternation and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "service": []}
    with tempfile.TemporaryDirectory(prefix="bench-tail-") as tmp:
        workdir = Path(tmp)
        artifacts = workdir / "artifacts"
        prepare_artifact(artifacts)
        env = service_env(artifacts, "fast")
        with (
            uvicorn_server("bare", BARE_APP, {}, factory=False, ready_path="/health/ready") as bare,
            uvicorn_server(
                "service", PROBED_APP, env, factory=True, ready_path="/health/ready"
            ) as service,
        ):
            for server in (bare, service):  # warm-up: first-time work out of the runs
                run_wrk(server.port, "/predict", 64, 1.0, unique=True, workdir=workdir)
            for _ in range(args.reps):
                runs["bare"].append(one_run(bare, args.seconds, workdir, probed=False))
                runs["service"].append(one_run(service, args.seconds, workdir, probed=True))
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
