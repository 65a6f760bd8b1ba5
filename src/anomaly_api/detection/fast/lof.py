"""LocalOutlierFactor (novelty) neighbour data: a KD-tree plus the fitted k-distances and lrd.

scikit-learn's novelty ``score_samples`` is, for a sample with neighbours ``o_1..o_k``
at distances ``d_j``::

    lrd(x) = 1 / (mean_j max(d_j, k_distance(o_j)) + 1e-10)
    score(x) = -mean_j lrd(o_j) / lrd(x)

The training side (``k_distance``, ``lrd``) is fixed at fit time, so only the k-NN
query of the new sample is needed; SciPy's ``cKDTree`` answers it exactly (Euclidean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from sklearn.neighbors import LocalOutlierFactor

LRD_EPSILON = 1e-10
"""Added to the mean reachability distance by scikit-learn (duplicates > k)."""
PARALLEL_QUERY_ROWS = 64
"""From this many rows the neighbour query uses every core; below, threads cost more."""
LEAF_SIZE = 48
"""Points per KD-tree leaf. For k=20 over 10,000 rows, 32-96 answered 1,000-row queries
~1.5x faster than SciPy's default of 16 (the neighbours come from fewer leaves)."""


@dataclass(frozen=True)
class NeighbourIndex:
    """Exact k-nearest-neighbour queries against the LOF's training data.

    Attributes
    ----------
    n_neighbors : int
    k_distance : ndarray of shape (n_train,)
        Distance of each training point to its k-th neighbour (itself excluded).
    lrd : ndarray of shape (n_train,)
        Local reachability density of each training point.
    """

    n_neighbors: int
    k_distance: NDArray[np.float64]
    lrd: NDArray[np.float64]
    _tree: Any
    _fallback: LocalOutlierFactor | None

    @classmethod
    def from_local_outlier_factor(cls, lof: LocalOutlierFactor) -> NeighbourIndex:
        """Build the KD-tree once from the fitted estimator's training data."""
        if lof.effective_metric_ != "euclidean":
            raise ValueError(f"only the Euclidean metric is supported, got {lof.effective_metric_}")
        k = int(lof.n_neighbors_)
        # For wide data scikit-learn uses brute force, whose GEMM-based distances differ
        # from exact ones by ~1e-8; ask the estimator itself there to stay identical.
        brute = lof._fit_method == "brute"
        return cls(
            n_neighbors=k,
            k_distance=np.ascontiguousarray(lof._distances_fit_X_[:, k - 1], dtype=np.float64),
            lrd=np.ascontiguousarray(lof._lrd, dtype=np.float64),
            _tree=None
            if brute
            else cKDTree(np.asarray(lof._fit_X, dtype=np.float64), leafsize=LEAF_SIZE),
            _fallback=lof if brute else None,
        )

    def query(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Distances and training indices of each row's ``n_neighbors`` nearest points."""
        if self._fallback is not None:
            dist, ind = self._fallback.kneighbors(X, n_neighbors=self.n_neighbors)
        else:
            workers = -1 if X.shape[0] >= PARALLEL_QUERY_ROWS else 1
            dist, ind = self._tree.query(X, k=self.n_neighbors, workers=workers)
        shape = (X.shape[0], self.n_neighbors)
        return (
            np.ascontiguousarray(dist, dtype=np.float64).reshape(shape),
            np.ascontiguousarray(ind, dtype=np.int64).reshape(shape),
        )
