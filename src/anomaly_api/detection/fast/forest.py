"""IsolationForest flattened into arrays, so one compiled loop can walk all its trees.

scikit-learn scores a sample as ``2 ** (-mean_depth / c(max_samples))`` where a tree's
depth for the sample is ``depth(leaf) + c(n_node_samples(leaf)) - 1`` and ``c`` is the
average path length of an unsuccessful binary-search-tree lookup. The per-leaf term is
precomputed here with the same operations, in the same order, as scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest

LEAF = -1
"""Child index of a leaf, as in scikit-learn's ``tree_.children_left``."""


def average_path_length(n_samples: NDArray[np.int64]) -> NDArray[np.float64]:
    """``c(n)``: average path length of an unsuccessful search in an ``n``-sample BST.

    Same cases and arithmetic as ``sklearn.ensemble._iforest._average_path_length``:
    0 for ``n <= 1``, 1 for ``n == 2``, else ``2 (ln(n - 1) + gamma) - 2 (n - 1) / n``.
    """
    n = np.asarray(n_samples, dtype=np.float64)
    result = np.zeros(n.shape)
    result[n == 2] = 1.0
    many = n > 2
    big = n[many]
    result[many] = 2.0 * (np.log(big - 1.0) + np.euler_gamma) - 2.0 * (big - 1.0) / big
    return result


@dataclass(frozen=True)
class FlatForest:
    """All trees of a fitted IsolationForest in flat arrays indexed by global node id.

    Attributes
    ----------
    roots : ndarray of shape (n_trees,)
        Global id of each tree's root.
    feature : ndarray of shape (n_nodes,)
        Column of the full input that the node splits on (0 at leaves).
    threshold : ndarray of shape (n_nodes,)
        Go left when ``float32(x[feature]) <= threshold``, as scikit-learn does.
    left, right : ndarray of shape (n_nodes,)
        Global ids of the children; ``LEAF`` at leaves.
    leaf_value : ndarray of shape (n_nodes,)
        ``depth + c(n_node_samples) - 1`` (meaningful at leaves only).
    denominator : float
        ``n_trees * c(max_samples)``; ``score_samples = -(2 ** -(sum / denominator))``.
    max_depth : int
        Edges on the longest root-to-leaf path of any tree.
    """

    roots: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    leaf_value: NDArray[np.float64]
    denominator: float
    max_depth: int

    def kernel_arrays(
        self,
    ) -> tuple[
        NDArray[np.int64],
        NDArray[np.int64],
        NDArray[np.float64],
        NDArray[np.int64],
        NDArray[np.int64],
        NDArray[np.float64],
        float,
    ]:
        """What the kernel's ``score_rows`` and ``compiled_model`` take of the forest, in
        their order: the roots, the nodes' arrays, the denominator."""
        return (self.roots, self.feature, self.threshold, self.left, self.right,
                self.leaf_value, self.denominator)  # fmt: skip

    @classmethod
    def from_isolation_forest(cls, forest: IsolationForest) -> FlatForest:
        """Copy the fitted trees' arrays; the forest itself is not kept."""
        roots, features, thresholds, lefts, rights, values = [], [], [], [], [], []
        offset = max_depth = 0
        for estimator, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            is_leaf = tree.children_left == LEAF
            roots.append(offset)
            # Trees may see a subset of the columns: map their feature ids back.
            features.append(np.where(is_leaf, 0, np.asarray(columns)[np.maximum(tree.feature, 0)]))
            thresholds.append(tree.threshold)
            lefts.append(np.where(is_leaf, LEAF, tree.children_left + offset))
            rights.append(np.where(is_leaf, LEAF, tree.children_right + offset))
            depths = tree.compute_node_depths()  # the root has depth 1
            max_depth = max(max_depth, int(depths.max()) - 1)
            values.append(depths + average_path_length(tree.n_node_samples) - 1.0)
            offset += tree.node_count
        c_max = float(average_path_length(np.array([forest.max_samples_]))[0])
        return cls(
            roots=np.array(roots, dtype=np.int64),
            feature=np.concatenate(features).astype(np.int64),
            threshold=np.concatenate(thresholds).astype(np.float64),
            left=np.concatenate(lefts).astype(np.int64),
            right=np.concatenate(rights).astype(np.int64),
            leaf_value=np.concatenate(values).astype(np.float64),
            denominator=len(forest.estimators_) * c_max,
            max_depth=max_depth,
        )
