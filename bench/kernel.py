"""Section ``kernel``: the neighbour search alone, the C kernel's scans against cKDTree."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.timing import rounds_ms

if TYPE_CHECKING:
    from bench.__main__ import Context


def neighbours(ctx: Context) -> dict[str, Any]:
    """The k-NN query for 1 and 1,000 rows, C scans against cKDTree, interleaved rounds."""
    from scipy.spatial import cKDTree

    from anomaly_api.artifacts import load_artifact
    from anomaly_api.detection.fast import compile_scorer
    from anomaly_api.detection.fast import kernel as compiled
    from anomaly_api.detection.fast.lof import LEAF_SIZE

    scorer = compile_scorer(load_artifact(ctx.artifacts).model, "c")
    assert scorer.lof_ is not None
    train, k = scorer.lof_.train_rows, scorer.lof_.n_neighbors
    train_t, blocks = np.ascontiguousarray(train.T), scorer._blocks.kernel_arrays()
    tree = cKDTree(train, leafsize=LEAF_SIZE)
    X = np.random.default_rng(3).normal(size=(1000, train.shape[1]))

    def query(rows: np.ndarray, threads: int, blocked: bool) -> None:
        dist, ind = np.empty((len(rows), k)), np.empty((len(rows), k), dtype=np.int64)
        ties = np.empty(len(rows), dtype=np.int64)
        if blocked:
            compiled.knn_blocks(rows, *blocks, k, dist, ind, ties, threads)
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


PARTS = {"neighbours": neighbours}
