"""The same batch computation as the compiled ``kernel.score_rows`` in plain NumPy.

It needs no C compiler at install time (the ``numpy`` backend, the fallback where the
kernel cannot be built), at the price of ~50 small NumPy calls per batch: slower for one row,
about as fast for large batches, where the neighbour query dominates. The LOF and
z-score lines are scikit-learn's own expressions; the forest sums trees pairwise
rather than one by one, which moves the score by at most a few units in the last place.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.fast.forest import LEAF, FlatForest
from anomaly_api.detection.fast.lof import LRD_EPSILON


class VectorisedForest:
    """Walks every tree for every row at once, one tree level per step."""

    def __init__(self, forest: FlatForest) -> None:
        self.forest = forest
        nodes = np.arange(forest.left.shape[0])
        leaf = forest.left == LEAF
        # Leaves point at themselves, so every row can take the same number of steps.
        self._left = np.where(leaf, nodes, forest.left)
        self._right = np.where(leaf, nodes, forest.right)

    def score_samples(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """IsolationForest ``score_samples`` of each row."""
        forest = self.forest
        with np.errstate(over="ignore"):  # scikit-learn's own float32 cast saturates too
            X32 = X.astype(np.float32)
        rows = np.arange(X.shape[0])[:, None]
        node = np.broadcast_to(forest.roots, (X.shape[0], forest.roots.shape[0]))
        for _ in range(forest.max_depth):
            go_left = X32[rows, forest.feature[node]] <= forest.threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        total = forest.leaf_value[node].sum(axis=1)
        ratio = total / forest.denominator if forest.denominator != 0.0 else np.ones_like(total)
        result: NDArray[np.float64] = -(2.0 ** (-ratio))
        return result


def lof_scores(
    dist: NDArray[np.float64],
    ind: NDArray[np.int64],
    k_distance: NDArray[np.float64],
    lrd: NDArray[np.float64],
) -> NDArray[np.float64]:
    """LocalOutlierFactor novelty ``score_samples`` from each row's neighbours."""
    reach = np.maximum(dist, k_distance[ind])
    x_lrd = 1.0 / (np.mean(reach, axis=1) + LRD_EPSILON)
    result: NDArray[np.float64] = -np.mean(lrd[ind] / x_lrd[:, np.newaxis], axis=1)
    return result


def zscore_scores(
    X: NDArray[np.float64], center: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """ZScoreDetector ``score_samples``: minus the largest robust z-score."""
    result: NDArray[np.float64] = -np.max(np.abs(X - center) / scale, axis=1)
    return result
