"""The numba kernel the ``fast`` backend used before the compiled C kernel (commit 5314ffc).

Kept here only so that ``python -m bench.kernel`` can measure what a JIT at run time
costs next to the ahead-of-time kernel (start, memory, speed) in the same run. numba is
no longer a dependency: ``pip install numba==0.68.1`` to include it in the comparison.
Importing this module compiles the loop (or loads numba's cache).
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.fast.forest import LEAF
from anomaly_api.detection.fast.lof import LRD_EPSILON

_UNROLL = 8
_BLOCK = 128


def caching_enabled() -> bool:
    """Cache compiled code only in an explicitly configured, writable directory.

    numba's default cache sits next to the installed sources, which is read-only in the
    container, and a cache that cannot be written makes ``cache=True`` fail outright.
    """
    cache_dir = str(getattr(numba.config, "CACHE_DIR", "") or "")
    return bool(cache_dir) and os.path.isdir(cache_dir) and os.access(cache_dir, os.W_OK)


_CACHE = caching_enabled()


@numba.njit("float64(float64[::1], int64, int64)", cache=_CACHE, error_model="numpy")
def pairwise_sum(values: NDArray[np.float64], start: int, n: int) -> float:
    """Sum ``values[start:start + n]`` in the order NumPy's ``add.reduce`` uses.

    NumPy adds short runs one by one, up to 128 values with eight interleaved
    accumulators, and splits longer runs in two (``numpy/_core/src/umath/loops_utils``).
    """
    if n < _UNROLL:
        total = 0.0
        for i in range(n):
            total += values[start + i]
        return total
    if n <= _BLOCK:
        r0 = values[start]
        r1 = values[start + 1]
        r2 = values[start + 2]
        r3 = values[start + 3]
        r4 = values[start + 4]
        r5 = values[start + 5]
        r6 = values[start + 6]
        r7 = values[start + 7]
        i = _UNROLL
        while i < n - n % _UNROLL:
            r0 += values[start + i]
            r1 += values[start + i + 1]
            r2 += values[start + i + 2]
            r3 += values[start + i + 3]
            r4 += values[start + i + 4]
            r5 += values[start + i + 5]
            r6 += values[start + i + 6]
            r7 += values[start + i + 7]
            i += _UNROLL
        total = float(((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)))
        while i < n:
            total += values[start + i]
            i += 1
        return total
    half = n // 2
    half -= half % _UNROLL
    return float(pairwise_sum(values, start, half) + pairwise_sum(values, start + half, n - half))


@numba.njit(
    "void(float64[:, ::1], float64[:, ::1], int64[:, ::1],"  # X, neighbour dist, ind
    " int64[::1], int64[::1], float64[::1], int64[::1], int64[::1], float64[::1], float64,"
    " float64[::1], float64[::1],"  # LOF training k-distance, lrd
    " float64[::1], float64[::1],"  # z-score centre, scale
    " float64[:, ::1])",  # out
    nogil=True,
    cache=_CACHE,
    error_model="numpy",  # x / 0 gives inf as in NumPy, never an exception
)
def score_rows(
    X: NDArray[np.float64],
    dist: NDArray[np.float64],
    ind: NDArray[np.int64],
    roots: NDArray[np.int64],
    feature: NDArray[np.int64],
    threshold: NDArray[np.float64],
    left: NDArray[np.int64],
    right: NDArray[np.int64],
    leaf_value: NDArray[np.float64],
    denominator: float,
    k_distance: NDArray[np.float64],
    lrd: NDArray[np.float64],
    center: NDArray[np.float64],
    scale: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    """Write the three detectors' ``score_samples`` of each row of ``X`` into ``out``."""
    n_rows, n_features = X.shape
    k = ind.shape[1]
    scratch = np.empty(k)
    # Tree by tree, all rows through each: one tree's nodes stay in the L1 cache. Each
    # row still adds its trees in order, as scikit-learn does.
    totals = np.zeros(n_rows)
    for root in roots:
        for i in range(n_rows):
            node = root
            while left[node] != LEAF:
                # scikit-learn casts the input to float32 before walking its trees.
                if np.float64(np.float32(X[i, feature[node]])) <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            totals[i] += leaf_value[node]
    for i in range(n_rows):
        ratio = totals[i] / denominator if denominator != 0.0 else 1.0
        out[i, 0] = -(2.0 ** (-ratio))  # scikit-learn negates the paper's score

        for j in range(k):
            scratch[j] = max(dist[i, j], k_distance[ind[i, j]])
        x_lrd = 1.0 / (pairwise_sum(scratch, 0, k) / k + LRD_EPSILON)
        for j in range(k):
            scratch[j] = lrd[ind[i, j]] / x_lrd
        out[i, 1] = -(pairwise_sum(scratch, 0, k) / k)

        largest = 0.0
        for f in range(n_features):
            largest = max(largest, abs(X[i, f] - center[f]) / scale[f])
        out[i, 2] = -largest
