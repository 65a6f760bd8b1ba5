"""The compiled kernel: ``_kernel.c``, built ahead of time by the package's build.

One C extension (CPython API and the buffer protocol only; no JIT, no NumPy headers)
holds the per-row work of the ``fast`` backend:

* ``knn``: the exact k nearest training rows of each row, by a scan over all training
  rows with a running top-k, distances summed feature by feature as scikit-learn's
  KD-tree sums them (bit for bit the same distances);
* ``knn_blocks``: the same answer, from training rows cut into blocks and groups of
  blocks with their boxes (``blocks.py``): groups and blocks whose box is farther than
  the current k-th neighbour are skipped (used by the scorer; ``knn`` stays as the plain
  reference scan);
* ``score_rows``: the forest walk, LOF from the neighbours and the z-score, summed in
  scikit-learn's order;
* ``explain_rows``: all of it and the ensemble's decision rule for raw rows in one call
  (scaling, neighbours, scores, margins, votes, the anomaly score, severity and the
  contributions), on the fitted arrays ``compiled_model`` checks once and holds; it
  declines (returns 1) where the reference path must answer.

They release the GIL. ``pip install -e .`` (or ``make install``) compiles it with the
machine's C compiler; ``docs/kernel.md`` describes it.
"""

from __future__ import annotations

import os

KERNEL_MISSING = (
    "the compiled scoring kernel anomaly_api.detection.fast._kernel is not built: install the "
    "package with a C compiler and the Python headers present (`make install`, or "
    "`pip install -e .` in the checkout), or serve with ANOMALY_INFERENCE_BACKEND=numpy, "
    "which needs no compiler"
)

try:
    from anomaly_api.detection.fast import _kernel
except ImportError as error:  # pragma: no cover - exercised by a test with the module hidden
    raise ImportError(KERNEL_MISSING) from error

knn = _kernel.knn
knn_blocks = _kernel.knn_blocks
score_rows = _kernel.score_rows
compiled_model = _kernel.compiled_model
explain_rows = _kernel.explain_rows
check_forest = _kernel.check_forest
pairwise_sum = _kernel.pairwise_sum
LEAF: int = _kernel.LEAF
LRD_EPSILON: float = _kernel.LRD_EPSILON

PARALLEL_ROWS = 64
"""From this many rows the neighbour scan splits the rows over ``max_threads()`` threads."""
MAX_THREADS = 2


def max_threads() -> int:
    """Threads for a large batch's neighbour scan: at most ``MAX_THREADS``, at most the cores."""
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


__all__ = [
    "KERNEL_MISSING",
    "LEAF",
    "LRD_EPSILON",
    "PARALLEL_ROWS",
    "check_forest",
    "compiled_model",
    "explain_rows",
    "knn",
    "knn_blocks",
    "max_threads",
    "pairwise_sum",
    "score_rows",
]
