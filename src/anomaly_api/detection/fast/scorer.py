"""``FastScorer``: the ensemble's detector scores without scikit-learn's per-call overhead."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.ensemble import DETECTOR_NAMES, AnomalyEnsemble, EnsembleOutput
from anomaly_api.detection.fast.forest import FlatForest
from anomaly_api.detection.fast.lof import NeighbourIndex


class FastScorer:
    """Exact, fast replacement for ``AnomalyEnsemble.detector_scores``.

    Built once from a fitted ensemble by :func:`compile_scorer`. It reads the fitted
    scikit-learn structures (tree arrays, LOF training k-distances and lrd, z-score
    centre and scale) and reproduces each detector's ``score_samples`` to ~1e-15;
    the decision rule stays in ``AnomalyEnsemble.combine``.

    Parameters
    ----------
    model : AnomalyEnsemble
        A fitted ensemble; it is kept only for ``combine``.
    """

    def __init__(self, model: AnomalyEnsemble) -> None:
        self.model = model
        self.n_features_in_: int = int(model.n_features_in_)
        self.forest_ = FlatForest.from_isolation_forest(model.isolation_forest_)
        self.neighbours_ = NeighbourIndex.from_local_outlier_factor(model.local_outlier_factor_)
        self.center_ = np.ascontiguousarray(model.zscore_.center_, dtype=np.float64)
        self.scale_ = np.ascontiguousarray(model.zscore_.scale_, dtype=np.float64)
        # Imported here: importing the kernel compiles it (or loads it from numba's cache).
        from anomaly_api.detection.fast.kernel import score_rows

        self._kernel = score_rows

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors).

        ``X`` should be a C-contiguous float64 array of shape (n_samples,
        n_features); anything else is converted first. Non-finite values raise
        ``ValueError``, as in the reference path.
        """
        data = np.ascontiguousarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_ or data.shape[0] == 0:
            raise ValueError(
                f"expected shape (n_samples>0, {self.n_features_in_}), got {data.shape}"
            )
        if not np.isfinite(data).all():
            raise ValueError("input contains NaN or infinity")
        dist, ind = self.neighbours_.query(data)
        out = np.empty((data.shape[0], len(DETECTOR_NAMES)))
        forest = self.forest_
        self._kernel(
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
            self.neighbours_.k_distance,
            self.neighbours_.lrd,
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


def compile_scorer(model: AnomalyEnsemble) -> FastScorer:
    """Build the fast scorer for a fitted ensemble (once, at model load time)."""
    return FastScorer(model)
