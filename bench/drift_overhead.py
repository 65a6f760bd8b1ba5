"""Drift tracking's cost on ``/predict``: throughput at 64 connections, drift on vs off.

``python -m bench.drift_overhead [--pairs N] [--seconds S] [--smoke]`` starts the
service twice on the bench model (``ANOMALY_DRIFT_ENABLED=true`` and ``false``; both
with the service-wide alarm hook), then runs wrk against each in interleaved pairs,
alternating which goes first, so a neighbour's load on a shared machine hits both
sides alike. It reports each pair's ratio (on / off requests per second), their
median and spread, and writes ``bench/results/drift-overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.load import run_wrk
from bench.models import prepare_artifact
from bench.report import ratio
from bench.servers import ROOT, service_env, service_server

CONNECTIONS = 64
RESULT = ROOT / "bench" / "results" / "drift-overhead.json"


def measure(pairs: int, seconds: float, workdir: Path, artifacts: Path) -> dict[str, Any]:
    """Interleaved wrk pairs against a drift-on and a drift-off server on ``artifacts``.

    The only place the benchmark keeps two servers up at once: only one receives load at
    a time, and restarting them for every run would put first-run effects in every run.
    """
    base = service_env(artifacts, "fast")
    runs: list[dict[str, float | int]] = []
    with (
        service_server("drift-on", {**base, "ANOMALY_DRIFT_ENABLED": "true"}) as on,
        service_server("drift-off", {**base, "ANOMALY_DRIFT_ENABLED": "false"}) as off,
    ):
        for server in (on, off):  # warm-up (JIT, first allocations)
            run_wrk(server.port, "/predict", CONNECTIONS, 1.0, unique=True, workdir=workdir)
        for i in range(pairs):
            order = (on, off) if i % 2 == 0 else (off, on)
            rps: dict[str, float] = {}
            errors: dict[str, int] = {}
            for server in order:
                result = run_wrk(
                    server.port, "/predict", CONNECTIONS, seconds, unique=True, workdir=workdir
                )
                if result.non_2xx:
                    raise RuntimeError(f"{server.name}: {result.non_2xx} non-2xx answers")
                rps[server.name] = result.requests_per_s
                errors[server.name] = result.errors
            runs.append(
                {
                    "on_rps": rps["drift-on"],
                    "off_rps": rps["drift-off"],
                    "ratio": ratio(rps["drift-on"], rps["drift-off"]),
                    "on_socket_errors": errors["drift-on"],
                    "off_socket_errors": errors["drift-off"],
                }
            )
    ratios = [float(r["ratio"]) for r in runs]
    median = statistics.median(ratios)
    return {
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "pairs": runs,
        "ratio_median": median,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_stdev": statistics.stdev(ratios) if len(ratios) > 1 else 0.0,
        "overhead_median_pct": (1.0 - median) * 100.0,
        "target": "overhead <= 5% (ratio >= 0.95)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--smoke", action="store_true", help="2 pairs of 1 s; no result file")
    args = parser.parse_args()
    pairs, seconds = (2, 1.0) if args.smoke else (args.pairs, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "artifacts"
        prepare_artifact(artifacts)
        report = measure(pairs, seconds, Path(tmp), artifacts)
    text = json.dumps(report, indent=2)
    print(text)
    if not args.smoke:
        RESULT.write_text(text + "\n")


if __name__ == "__main__":
    main()
