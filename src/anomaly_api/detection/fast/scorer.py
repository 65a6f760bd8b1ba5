"""``FastScorer``: the ensemble's detector scores without scikit-learn's per-call overhead.

The input scaling and the PCA member are plain NumPy matrix products, shared with the
reference ensemble (``apply_scaling``, ``pca_statistics``) and the same on both kernels;
the kernel choice only concerns the IsolationForest, LOF and z-score members.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.ensemble import AnomalyEnsemble, EnsembleOutput
from anomaly_api.detection.fast.forest import LEAF, FlatForest
from anomaly_api.detection.fast.lof import NeighbourIndex
from anomaly_api.detection.fast.vectorised import VectorisedForest, lof_scores, zscore_scores
from anomaly_api.detection.pca_monitor import pca_score, pca_statistics
from anomaly_api.detection.scaling import apply_scaling

Kernel = Literal["numba", "numpy"]
"""``numba``: one compiled loop per batch (fastest per row; ~1 s and ~110 MB to compile).
``numpy``: vectorised NumPy calls (no compiler, lighter; ~3x slower for one row)."""

_KERNEL_MEMBERS = ("isolation_forest", "local_outlier_factor", "zscore")
"""The members the kernel computes, in the kernel's output column order."""


def _placeholder_forest() -> FlatForest:
    """A one-leaf forest, for a kernel call when the model has no IsolationForest."""
    return FlatForest(
        roots=np.zeros(1, dtype=np.int64),
        feature=np.zeros(1, dtype=np.int64),
        threshold=np.zeros(1),
        left=np.full(1, LEAF, dtype=np.int64),
        right=np.full(1, LEAF, dtype=np.int64),
        leaf_value=np.zeros(1),
        denominator=1.0,
        max_depth=0,
    )


class FastScorer:
    """Exact, fast replacement for ``AnomalyEnsemble.detector_scores``.

    Built once from a fitted ensemble by :func:`compile_scorer`. It reads the fitted
    structures (input scaling, tree arrays, LOF training k-distances and lrd, z-score
    centre and scale, PCA components and limits) and reproduces each detector's
    ``score_samples`` to ~1e-15 (relative); the decision rule stays in
    ``AnomalyEnsemble.combine``.

    Parameters
    ----------
    model : AnomalyEnsemble
        A fitted ensemble; it is kept for ``combine`` and the contributions.
    kernel : {"numba", "numpy"}, default="numba"
        How the per-row work after the neighbour query is done.
    """

    def __init__(self, model: AnomalyEnsemble, kernel: Kernel = "numba") -> None:
        if kernel not in ("numba", "numpy"):
            raise ValueError(f"kernel must be 'numba' or 'numpy', got {kernel!r}")
        self.model = model
        self.kernel = kernel
        self.detectors: tuple[str, ...] = tuple(model.detectors_)
        self.n_features_in_: int = int(model.n_features_in_)
        self.center_ = np.ascontiguousarray(model.center_, dtype=np.float64)
        self.scale_ = np.ascontiguousarray(model.scale_, dtype=np.float64)
        members = set(self.detectors)
        self.forest_ = (
            FlatForest.from_isolation_forest(model.isolation_forest_)
            if "isolation_forest" in members
            else _placeholder_forest()
        )
        self.neighbours_ = (
            NeighbourIndex.from_local_outlier_factor(model.local_outlier_factor_)
            if "local_outlier_factor" in members
            else None
        )
        if "zscore" in members:
            self.zscore_center_ = np.ascontiguousarray(model.zscore_.center_, dtype=np.float64)
            self.zscore_scale_ = np.ascontiguousarray(model.zscore_.scale_, dtype=np.float64)
        else:
            self.zscore_center_ = np.zeros(self.n_features_in_)
            self.zscore_scale_ = np.ones(self.n_features_in_)
        self._kernel_columns = [m for m in self.detectors if m in _KERNEL_MEMBERS]
        if kernel == "numba" and self._kernel_columns:
            # Imported here: importing the kernel compiles it (or loads numba's cache).
            from anomaly_api.detection.fast.kernel import score_rows

            self._score_rows = score_rows
        elif kernel == "numpy" and "isolation_forest" in members:
            self._vectorised = VectorisedForest(self.forest_)

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors).

        ``X`` (raw units) should be a C-contiguous float64 array of shape (n_samples,
        n_features); anything else is converted first. Non-finite values raise
        ``ValueError``, as in the reference path, and so do values so large that
        distances overflow.
        """
        data = np.ascontiguousarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_ or data.shape[0] == 0:
            raise ValueError(
                f"expected shape (n_samples>0, {self.n_features_in_}), got {data.shape}"
            )
        if not np.isfinite(data).all():
            raise ValueError("input contains NaN or infinity")
        with np.errstate(over="ignore"):
            scaled = apply_scaling(data, self.center_, self.scale_)
        if not np.isfinite(scaled).all():
            raise ValueError("feature values too large to score: scaling overflows float64")
        columns: dict[str, NDArray[np.float64]] = {}
        if self._kernel_columns:
            columns.update(self._kernel_scores(scaled))
        if "pca" in self.detectors:
            pca = self.model.pca_
            t2, q, _ = pca_statistics(scaled, pca.mean_, pca.components_, pca.explained_variance_)
            columns["pca"] = pca_score(t2, q, pca.t2_limit_, pca.q_limit_)
        return np.column_stack([columns[name] for name in self.detectors])

    def _kernel_scores(self, scaled: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """IsolationForest, LOF and z-score columns of the members the model has."""
        n_rows = scaled.shape[0]
        neighbours = self.neighbours_
        if neighbours is not None:
            dist, ind = neighbours.query(scaled)
            if not np.isfinite(dist[:, -1]).all():
                # Squared distances overflow float64 beyond |x| ~ 1e154; the KD-tree then
                # reports missing neighbours (index n_train), which must never be used.
                raise ValueError("feature values too large to score: distances overflow float64")
        if self.kernel == "numpy":
            out: dict[str, NDArray[np.float64]] = {}
            if "isolation_forest" in self._kernel_columns:
                out["isolation_forest"] = self._vectorised.score_samples(scaled)
            if neighbours is not None:
                out["local_outlier_factor"] = lof_scores(
                    dist, ind, neighbours.k_distance, neighbours.lrd
                )
            if "zscore" in self._kernel_columns:
                out["zscore"] = zscore_scores(scaled, self.zscore_center_, self.zscore_scale_)
            return out
        if neighbours is None:  # the kernel still reads one neighbour per row
            dist, ind = np.zeros((n_rows, 1)), np.zeros((n_rows, 1), dtype=np.int64)
            k_distance, lrd = np.ones(1), np.ones(1)
        else:
            k_distance, lrd = neighbours.k_distance, neighbours.lrd
        result = np.empty((n_rows, len(_KERNEL_MEMBERS)))
        forest = self.forest_
        self._score_rows(
            scaled,
            dist,
            ind,
            forest.roots,
            forest.feature,
            forest.threshold,
            forest.left,
            forest.right,
            forest.leaf_value,
            forest.denominator,
            k_distance,
            lrd,
            self.zscore_center_,
            self.zscore_scale_,
            result,
        )
        return {name: result[:, _KERNEL_MEMBERS.index(name)] for name in self._kernel_columns}

    def combine(self, scores: NDArray[np.float64], X: ArrayLike | None = None) -> EnsembleOutput:
        """The ensemble's own decision rule (see ``AnomalyEnsemble.combine``)."""
        return self.model.combine(scores, X)

    def explain(self, X: ArrayLike) -> EnsembleOutput:
        """Scores, votes, decision, severity and contributions for each sample."""
        return self.combine(self.detector_scores(X), X)


def compile_scorer(model: AnomalyEnsemble, kernel: Kernel = "numba") -> FastScorer:
    """Build the fast scorer for a fitted ensemble (once, at model load time)."""
    return FastScorer(model, kernel)
