"""Section ``kernel``: the scoring kernels side by side in one run (ratios are the signal on
a shared machine): the compiled C kernel (``c``), the NumPy fallback and scikit-learn
(``detector_scores`` for 1 and 1,000 rows), the neighbour search alone against SciPy's
``cKDTree``, and the start-up and memory of a fresh process and of the service per backend."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.data import ROOT
from bench.servers import rss_mb, service_env, service_server
from bench.timing import rounds_ms

if TYPE_CHECKING:
    from bench.__main__ import Context

VARIANTS = ("c", "numpy", "sklearn")
BACKENDS = ("fast", "numpy", "sklearn")


def _model(ctx: Context) -> Any:
    from anomaly_api.artifacts import load_artifact

    return load_artifact(ctx.artifacts).model


def build(variant: str, model: Any) -> Any:
    """A callable computing ``detector_scores`` for ``variant``."""
    from anomaly_api.detection.fast import compile_scorer

    if variant == "sklearn":
        return model.detector_scores
    return compile_scorer(model, "c" if variant == "c" else "numpy").detector_scores


def scoring(ctx: Context) -> dict[str, Any]:
    """Median ms of ``detector_scores`` for 1 and 1,000 rows, variants interleaved per size."""
    model = _model(ctx)
    scorers = {v: build(v, model) for v in VARIANTS}
    X = np.random.default_rng(2).normal(size=(1000, model.n_features_in_))
    out: dict[str, Any] = {}
    for n in (1, 1000):
        rows = np.ascontiguousarray(X[:n])
        times = rounds_ms({f"{v}_ms": partial(scorers[v], rows) for v in VARIANTS},
                          rounds=ctx.size(1, 3), repeats=ctx.size(20, 3000 if n == 1 else 100),
                          budget_s=ctx.size(1.0, 24.0))  # fmt: skip
        out[str(n)] = times
    return {"kernel": {"scoring": out}}


def neighbours(ctx: Context) -> dict[str, Any]:
    """The k-NN query alone: the blocked C scan the scorer uses and the plain C scan (1 and
    2 threads) against cKDTree (1 and 2 workers)."""
    from scipy.spatial import cKDTree

    from anomaly_api.detection.fast import compile_scorer
    from anomaly_api.detection.fast import kernel as compiled
    from anomaly_api.detection.fast.lof import LEAF_SIZE

    scorer = compile_scorer(_model(ctx), "c")
    assert scorer.lof_ is not None
    train, k = scorer.lof_.train_rows, scorer.lof_.n_neighbors
    train_t, b = np.ascontiguousarray(train.T), scorer._blocks
    tree = cKDTree(train, leafsize=LEAF_SIZE)
    X = np.random.default_rng(3).normal(size=(1000, train.shape[1]))

    def query(rows: np.ndarray, threads: int, blocked: bool) -> None:
        dist, ind = np.empty((len(rows), k)), np.empty((len(rows), k), dtype=np.int64)
        ties = np.empty(len(rows), dtype=np.int64)
        if blocked:
            compiled.knn_blocks(rows, b.train_t, b.index, b.starts, b.lo, b.hi, k, dist, ind,
                                ties, threads)  # fmt: skip
        else:
            compiled.knn(rows, train_t, k, dist, ind, ties, threads)

    out: dict[str, Any] = {}
    for n in (1, 1000):
        rows = np.ascontiguousarray(X[:n])
        runs = {
            "c_blocks_1_thread_ms": partial(query, rows, 1, True),
            "c_blocks_2_threads_ms": partial(query, rows, 2, True),
            "c_scan_1_thread_ms": partial(query, rows, 1, False),
            "c_scan_2_threads_ms": partial(query, rows, 2, False),
            "ckdtree_1_worker_ms": partial(tree.query, rows, k, workers=1),
            "ckdtree_2_workers_ms": partial(tree.query, rows, k, workers=2),
        }
        out[str(n)] = rounds_ms(runs, rounds=ctx.size(1, 3), repeats=ctx.size(20, 3000 if n == 1
                                else 100), budget_s=ctx.size(1.0, 18.0))  # fmt: skip
    return {"kernel": {"neighbours": out}}


def probe(variant: str, artifacts_dir: str) -> None:
    """In a child process: load the model, build ``variant``'s scorer, score one row, then
    print ``ready`` and the RSS."""
    from anomaly_api.artifacts import load_artifact

    model = load_artifact(Path(artifacts_dir)).model
    build(variant, model)(np.zeros((1, model.n_features_in_)))
    print(f"ready {rss_mb(os.getpid()):.1f}", flush=True)


def process(ctx: Context) -> dict[str, Any]:
    """A fresh process that loads the model and builds each scorer: seconds from spawn to
    ready and RSS then, medians over rounds whose order rotates."""
    code = "import sys; from bench.kernel import probe; probe(*sys.argv[1:])"
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for rep in range(ctx.size(1, 8)):
        for v in VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]:
            started = time.perf_counter()
            args = [sys.executable, "-c", code, v, str(ctx.artifacts)]
            done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
            word, rss = done.stdout.split()
            assert word == "ready", done.stdout
            runs[v].append((time.perf_counter() - started, float(rss)))
    return {"kernel": {"process": _medians(runs)}}


def service(ctx: Context) -> dict[str, Any]:
    """The service (uvicorn, one worker) on each backend: start to ready and RSS."""
    backends = ctx.size(BACKENDS[:1], BACKENDS)
    runs: dict[str, list[tuple[float, float]]] = {b: [] for b in backends}
    for rep in range(ctx.size(1, 3)):
        for backend in backends[rep % 3 :] + backends[: rep % 3]:
            with service_server(backend, service_env(ctx.artifacts, backend)) as server:
                runs[backend].append((server.start_to_ready_s, server.rss_ready_mb))
    return {"kernel": {"service": _medians(runs)}}


def _medians(runs: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    return {
        name: {"start_to_ready_s": statistics.median(r[0] for r in rows),
               "rss_ready_mb": statistics.median(r[1] for r in rows)}
        for name, rows in runs.items()
    }  # fmt: skip


PARTS = {"scoring": scoring, "neighbours": neighbours, "process": process, "service": service}
