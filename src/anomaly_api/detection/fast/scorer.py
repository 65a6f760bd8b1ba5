"""``FastScorer``: the ensemble's detector scores without scikit-learn's per-call overhead."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.ensemble import DETECTOR_NAMES, AnomalyEnsemble, EnsembleOutput
from anomaly_api.detection.fast.forest import FlatForest
from anomaly_api.detection.fast.lof import NeighbourIndex
from anomaly_api.detection.fast.vectorised import VectorisedForest, lof_scores, zscore_scores

Kernel = Literal["numba", "numpy"]
"""``numba``: one compiled loop per batch (fastest per row; ~1 s and ~110 MB to compile).
``numpy``: vectorised NumPy calls (no compiler, lighter; ~3x slower for one row)."""


class FastScorer:
    """Exact, fast replacement for ``AnomalyEnsemble.detector_scores``.

    Built once from a fitted ensemble by :func:`compile_scorer`. It reads the fitted
    scikit-learn structures (tree arrays, LOF training k-distances and lrd, z-score
    centre and scale) and reproduces each detector's ``score_samples`` to ~1e-15
    (relative); the decision rule stays in ``AnomalyEnsemble.combine``.

    Parameters
    ----------
    model : AnomalyEnsemble
        A fitted ensemble; it is kept only for ``combine``.
    kernel : {"numba", "numpy"}, default="numba"
        How the per-row work after the neighbour query is done.
    """

    def __init__(self, model: AnomalyEnsemble, kernel: Kernel = "numba") -> None:
        self.model = model
        self.kernel = kernel
        self.n_features_in_: int = int(model.n_features_in_)
        self.forest_ = FlatForest.from_isolation_forest(model.isolation_forest_)
        self.neighbours_ = NeighbourIndex.from_local_outlier_factor(model.local_outlier_factor_)
        self.center_ = np.ascontiguousarray(model.zscore_.center_, dtype=np.float64)
        self.scale_ = np.ascontiguousarray(model.zscore_.scale_, dtype=np.float64)
        if kernel == "numba":
            # Imported here: importing the kernel compiles it (or loads numba's cache).
            from anomaly_api.detection.fast.kernel import score_rows

            self._score_rows = score_rows
        elif kernel == "numpy":
            self._vectorised = VectorisedForest(self.forest_)
        else:
            raise ValueError(f"kernel must be 'numba' or 'numpy', got {kernel!r}")

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors).

        ``X`` should be a C-contiguous float64 array of shape (n_samples,
        n_features); anything else is converted first. Non-finite values raise
        ``ValueError``, as in the reference path, and so do values so large (beyond
        ~1e154) that distances overflow.
        """
        data = np.ascontiguousarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_ or data.shape[0] == 0:
            raise ValueError(
                f"expected shape (n_samples>0, {self.n_features_in_}), got {data.shape}"
            )
        if not np.isfinite(data).all():
            raise ValueError("input contains NaN or infinity")
        dist, ind = self.neighbours_.query(data)
        if not np.isfinite(dist[:, -1]).all():
            # Squared distances overflow float64 beyond |x| ~ 1e154; the KD-tree then
            # reports missing neighbours (index n_train), which must never be used.
            raise ValueError("feature values too large to score: distances overflow float64")
        neighbours = self.neighbours_
        if self.kernel == "numpy":
            return np.column_stack(
                [
                    self._vectorised.score_samples(data),
                    lof_scores(dist, ind, neighbours.k_distance, neighbours.lrd),
                    zscore_scores(data, self.center_, self.scale_),
                ]
            )
        out = np.empty((data.shape[0], len(DETECTOR_NAMES)))
        forest = self.forest_
        self._score_rows(
            data,
            dist,
            ind,
            forest.roots,
            forest.feature,
            forest.threshold,
            forest.left,
            forest.right,
            forest.leaf_value,
            forest.denominator,
            neighbours.k_distance,
            neighbours.lrd,
            self.center_,
            self.scale_,
            out,
        )
        return out

    def combine(self, scores: NDArray[np.float64]) -> EnsembleOutput:
        """The ensemble's own decision rule (see ``AnomalyEnsemble.combine``)."""
        return self.model.combine(scores)

    def explain(self, X: ArrayLike) -> EnsembleOutput:
        """Scores, votes and decision of every detector for each sample."""
        return self.combine(self.detector_scores(X))


def compile_scorer(model: AnomalyEnsemble, kernel: Kernel = "numba") -> FastScorer:
    """Build the fast scorer for a fitted ensemble (once, at model load time)."""
    return FastScorer(model, kernel)
