"""``python -m bench.kernel [--smoke] [--out FILE]``: the scoring kernels side by side, one run.

Compares, in one run on one machine (ratios are the signal on a shared machine):

* scoring time of ``detector_scores`` for 1 and 1,000 rows: the compiled C kernel
  (``fast``), the NumPy fallback (``numpy``), scikit-learn (the reference), and the former
  ``fast`` backend (cKDTree + the numba kernel, ``bench/numba_kernel.py``) when numba is
  installed;
* the neighbour search alone: the C scan (1 and 2 threads) against SciPy's ``cKDTree``
  (1 and 2 workers);
* start to ready and RSS of a fresh process that loads the model and builds each scorer
  (the same four variants), interleaved over repetitions;
* start to ready and RSS of the real service (uvicorn, one worker) on each backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.inprocess import median_ms
from bench.models import prepare_artifact
from bench.report import write_results
from bench.servers import ROOT, SERVICE_APP, service_env, uvicorn_server

VARIANTS = ("c", "numpy", "sklearn", "numba")
SERVICE_BACKENDS = ("fast", "numpy", "sklearn")
READY = "ready"


def numba_available() -> bool:
    """Whether the former numba kernel can be part of the comparison."""
    return importlib.util.find_spec("numba") is not None


def build(variant: str, model: Any) -> Any:
    """A callable computing ``detector_scores`` for ``variant``."""
    from anomaly_api.detection.fast import compile_scorer

    if variant == "sklearn":
        return model.detector_scores
    if variant in ("c", "numpy"):
        return compile_scorer(model, variant).detector_scores
    from bench import numba_kernel  # compiles the numba loop

    # As the former ``fast`` backend ran: neighbours from SciPy's cKDTree, the rest in numba.
    scorer = compile_scorer(model, "numpy")

    def numba_scores(X: np.ndarray) -> np.ndarray:
        dist, ind = scorer.neighbours(X)
        forest, lof = scorer.forest_, scorer.lof_
        out = np.empty((X.shape[0], 3))
        numba_kernel.score_rows(
            X, dist, ind, forest.roots, forest.feature, forest.threshold, forest.left,
            forest.right, forest.leaf_value, forest.denominator, lof.k_distance, lof.lrd,
            scorer.center_, scorer.scale_, out,
        )  # fmt: skip
        return out

    return numba_scores


def rss_mb() -> float:
    """This process's resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(variant: str, artifacts_dir: str) -> None:
    """Child process: load the model, build ``variant``'s scorer, score one row, report."""
    from anomaly_api.artifacts import load_artifact

    model = load_artifact(Path(artifacts_dir)).model
    scores = build(variant, model)
    scores(np.zeros((1, model.n_features_in_)))
    print(f"{READY} {rss_mb():.1f}", flush=True)


def fresh_process(variant: str, artifacts_dir: Path) -> tuple[float, float]:
    """Seconds from spawn to ready, and RSS (MB) then, of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.kernel", "--probe", variant, str(artifacts_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    child.wait(timeout=60)
    word, rss = line.split()
    assert word == READY, line
    return elapsed, float(rss)


def scoring_times(model: Any, variants: list[str], *, smoke: bool) -> dict[str, Any]:
    """Median ms of ``detector_scores`` for 1 and 1,000 rows, variants interleaved per size."""
    X = np.random.default_rng(2).normal(size=(1000, model.n_features_in_))
    scorers = {v: build(v, model) for v in variants}
    results: dict[str, Any] = {}
    for n_rows in (1, 1000):
        rows = np.ascontiguousarray(X[:n_rows])
        repeats = 20 if smoke else (3000 if n_rows == 1 else 100)
        budget = 0.5 if smoke else 8.0
        per_variant: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(1 if smoke else 3):  # interleaved rounds: load changes apply to all
            for v in variants:
                reps = repeats // 10 if v == "sklearn" else repeats
                per_variant[v].append(median_ms(partial(scorers[v], rows), reps or 1, budget))
        results[str(n_rows)] = {f"{v}_ms": statistics.median(t) for v, t in per_variant.items()}
    return results


def neighbour_search(model: Any, *, smoke: bool) -> dict[str, Any]:
    """The k-NN query alone: the blocked C scan the scorer uses and the plain C scan (1 and
    2 threads) against cKDTree (1 and 2 workers)."""
    from scipy.spatial import cKDTree

    from anomaly_api.detection.fast import compile_scorer
    from anomaly_api.detection.fast import kernel as compiled
    from anomaly_api.detection.fast.lof import LEAF_SIZE

    scorer = compile_scorer(model, "c")
    train, k = scorer.lof_.train_rows, scorer.lof_.n_neighbors
    train_t = np.ascontiguousarray(train.T)
    tree = cKDTree(train, leafsize=LEAF_SIZE)
    X = np.random.default_rng(3).normal(size=(1000, train.shape[1]))

    def scan(rows: np.ndarray, threads: int) -> None:
        dist = np.empty((rows.shape[0], k))
        ind = np.empty((rows.shape[0], k), dtype=np.int64)
        ties = np.empty(rows.shape[0], dtype=np.int64)
        compiled.knn(rows, train_t, k, dist, ind, ties, threads)

    blocks = scorer._blocks

    def blocked(rows: np.ndarray, threads: int) -> None:
        dist = np.empty((rows.shape[0], k))
        ind = np.empty((rows.shape[0], k), dtype=np.int64)
        ties = np.empty(rows.shape[0], dtype=np.int64)
        b = blocks
        compiled.knn_blocks(rows, b.train_t, b.index, b.starts, b.lo, b.hi, k, dist, ind, ties,
                            threads)  # fmt: skip

    results: dict[str, Any] = {}
    for n_rows in (1, 1000):
        rows = np.ascontiguousarray(X[:n_rows])
        repeats = 20 if smoke else (3000 if n_rows == 1 else 100)
        budget = 0.5 if smoke else 6.0
        runs = {
            "c_blocks_1_thread_ms": partial(blocked, rows, 1),
            "c_blocks_2_threads_ms": partial(blocked, rows, 2),
            "c_scan_1_thread_ms": partial(scan, rows, 1),
            "c_scan_2_threads_ms": partial(scan, rows, 2),
            "ckdtree_1_worker_ms": partial(tree.query, rows, k, workers=1),
            "ckdtree_2_workers_ms": partial(tree.query, rows, k, workers=2),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(1 if smoke else 3):
            for name, fn in runs.items():
                times[name].append(median_ms(fn, repeats, budget))
        results[str(n_rows)] = {name: statistics.median(t) for name, t in times.items()}
    return results


def start_and_memory(artifacts_dir: Path, variants: list[str], reps: int) -> dict[str, Any]:
    """Fresh-process start to ready and RSS per variant, interleaved over ``reps`` rounds."""
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for rep in range(reps):
        # The order rotates every round, so no variant always follows the heaviest one.
        for v in variants[rep % len(variants) :] + variants[: rep % len(variants)]:
            runs[v].append(fresh_process(v, artifacts_dir))
    return {
        v: {
            "start_to_ready_s": statistics.median(r[0] for r in results),
            "rss_ready_mb": statistics.median(r[1] for r in results),
            "all": results,
        }
        for v, results in runs.items()
    }


def service_start(artifacts_dir: Path, reps: int) -> dict[str, Any]:
    """The real service (uvicorn, one worker) on each backend: start to ready, RSS."""
    runs: dict[str, list[tuple[float, float]]] = {b: [] for b in SERVICE_BACKENDS}
    for rep in range(reps):
        shift = rep % len(SERVICE_BACKENDS)
        for backend in SERVICE_BACKENDS[shift:] + SERVICE_BACKENDS[:shift]:
            env = service_env(artifacts_dir, backend)
            with uvicorn_server(
                backend, SERVICE_APP, env, factory=True, ready_path="/health/ready"
            ) as server:
                runs[backend].append((server.start_to_ready_s, server.rss_ready_mb))
    return {
        b: {
            "start_to_ready_s": statistics.median(r[0] for r in results),
            "rss_ready_mb": statistics.median(r[1] for r in results),
        }
        for b, results in runs.items()
    }


def report(results: dict[str, Any]) -> str:
    """The run as Markdown tables."""
    lines = ["| scoring (detector_scores) | " + " | ".join(results["variants"]) + " |"]
    lines.append("|---|" + "---:|" * len(results["variants"]))
    for n, row in results["scoring"].items():
        cells = [f"{row[f'{v}_ms']:.3f} ms" for v in results["variants"]]
        lines.append(f"| {n} row(s) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| neighbour search | C blocks, 1 thread | C blocks, 2 threads | C scan, 1 thread "
        "| C scan, 2 threads | cKDTree, 1 | cKDTree, 2 |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for n, row in results["neighbours"].items():
        lines.append(f"| {n} row(s) | " + " | ".join(f"{t:.3f} ms" for t in row.values()) + " |")
    for part, heading in (
        ("process", "fresh process: load + build scorer | start to ready s | RSS MB"),
        ("service", "service (uvicorn) backend | start to ready s | RSS ready MB"),
    ):
        lines += ["", f"| {heading} |", "|---|---:|---:|"]
        for name, row in results[part].items():
            lines.append(f"| {name} | {row['start_to_ready_s']:.2f} | {row['rss_ready_mb']:.0f} |")
    return "\n".join(lines)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.kernel", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="quick pass; numbers meaningless")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/kernel.json)")
    parser.add_argument(
        "--probe", nargs=2, metavar=("VARIANT", "ARTIFACTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.probe:
        probe(*args.probe)
        return 0
    from anomaly_api.artifacts import load_artifact

    variants = [v for v in VARIANTS if v != "numba" or numba_available()]
    out: Path = args.out or (
        Path(tempfile.gettempdir()) / "anomaly-bench-kernel-smoke.json"
        if args.smoke
        else ROOT / "bench" / "results" / "kernel.json"
    )
    with tempfile.TemporaryDirectory(prefix="anomaly-bench-kernel-") as tmp:
        artifacts_dir = Path(tmp) / "artifacts"
        prepare_artifact(artifacts_dir)
        model = load_artifact(artifacts_dir).model
        reps = 1 if args.smoke else 8
        results: dict[str, Any] = {
            "meta": {"load_average_before": os.getloadavg(), "cpus": os.cpu_count()},
            "variants": variants,
            "scoring": scoring_times(model, variants, smoke=args.smoke),
            "neighbours": neighbour_search(model, smoke=args.smoke),
            "process": start_and_memory(artifacts_dir, variants, reps),
            "service": service_start(artifacts_dir, 1 if args.smoke else 3),
        }
    results["meta"]["load_average_after"] = os.getloadavg()
    write_results(out, results, report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
