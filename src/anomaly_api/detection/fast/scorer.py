"""``FastScorer``: the ensemble's detector scores without scikit-learn's per-call overhead.

The input scaling and the PCA member are plain NumPy matrix products, shared with the
reference ensemble (``apply_scaling``, ``pca_statistics``) and the same on both kernels;
the kernel choice only concerns the IsolationForest, LOF and z-score members.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import sklearn
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.ensemble import AnomalyEnsemble, EnsembleOutput
from anomaly_api.detection.fast.blocks import TrainingBlocks
from anomaly_api.detection.fast.forest import LEAF, FlatForest
from anomaly_api.detection.fast.lof import (
    FittedLof,
    IncompatibleEstimatorError,
    NeighbourIndex,
    read_fitted_lof,
)
from anomaly_api.detection.fast.vectorised import VectorisedForest, lof_scores, zscore_scores
from anomaly_api.detection.pca_monitor import pca_score, pca_statistics
from anomaly_api.detection.scaling import apply_scaling
from anomaly_api.detection.voting import confidence_from_score

Kernel = Literal["c", "numpy"]
"""``c``: the compiled kernel (``_kernel.c``, built ahead of time; the ``fast`` backend).
``numpy``: vectorised NumPy calls and a SciPy KD-tree (no compiler; slower per row)."""

SELF_CHECK_TOLERANCE = 1e-9
"""Largest difference from scikit-learn's own scores accepted by the load-time check."""

_KERNEL_MEMBERS = ("isolation_forest", "local_outlier_factor", "zscore")
"""The members the kernel computes, in the kernel's output column order."""


class TooExtremeError(ValueError, ArithmeticError):
    """Feature values so large that their scaling or distances overflow float64.

    A ValueError (bad input, as before) and an ArithmeticError, as numpy's own overflow
    errors are: the service answers both as input too extreme to be scored, not as a
    fault. A feature constant in training (its spread floored at ~1e-6) reaches this from
    ~1e148, within the values the API accepts.
    """


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
    structures (input scaling, tree arrays, LOF training rows, k-distances and lrd,
    z-score centre and scale, PCA components and limits) and reproduces each detector's
    ``score_samples`` to ~1e-15. The decision rule is ``AnomalyEnsemble.decide``'s:
    ``explain`` computes it in the compiled kernel for the default members, bit for bit,
    and calls ``decide`` otherwise. At construction it scores a probe set both ways and raises
    :class:`IncompatibleEstimatorError` if they differ (a scikit-learn release that
    changed what is read).

    Parameters
    ----------
    model : AnomalyEnsemble
        A fitted ensemble; it is kept for ``decide`` and ``combine`` (and the thresholds
        they read), the PCA member and the load-time check.
    kernel : {"c", "numpy"}, default="c"
        The compiled kernel, or the vectorised NumPy fallback.
    """

    def __init__(self, model: AnomalyEnsemble, kernel: Kernel = "c") -> None:
        if kernel not in ("c", "numpy"):
            raise ValueError(f"kernel must be 'c' or 'numpy', got {kernel!r}")
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
        self.lof_: FittedLof | None = None
        self._kneighbors = None
        if "local_outlier_factor" in members:
            lof = model.local_outlier_factor_
            self.lof_ = read_fitted_lof(lof)
            self.lof_estimator = lof
            # Wide data: scikit-learn's brute-force neighbours (GEMM distances) on both kernels.
            self._kneighbors = lof.kneighbors if self.lof_.brute else None
        if "zscore" in members:
            self.zscore_center_ = np.ascontiguousarray(model.zscore_.center_, dtype=np.float64)
            self.zscore_scale_ = np.ascontiguousarray(model.zscore_.scale_, dtype=np.float64)
        else:
            self.zscore_center_ = np.zeros(self.n_features_in_)
            self.zscore_scale_ = np.ones(self.n_features_in_)
        self._compiled_model: object | None = None
        """The fitted arrays ``explain_rows`` reads (the default members, in the kernel's
        order, on the compiled kernel with its own neighbour search); None otherwise."""
        self._kernel_columns = [m for m in self.detectors if m in _KERNEL_MEMBERS]
        self._kernel_result_is_scores = kernel == "c" and self.detectors == _KERNEL_MEMBERS
        """The kernel's own output is the scores (the default members, in its order)."""
        if kernel == "c":
            from anomaly_api.detection.fast import kernel as compiled

            self._compiled = compiled
            if self.lof_ is not None:
                # The training rows cut into boxes the scan can skip (checked once here).
                self._blocks = TrainingBlocks.from_rows(self.lof_.train_rows)
            forest = self.forest_
            # Checked once here, not per call: the kernel then follows the nodes unchecked,
            # so the arrays are made read-only.
            compiled.check_forest(forest.feature, forest.left, forest.right, self.n_features_in_)
            for array in (forest.roots, forest.feature, forest.threshold, forest.left,
                          forest.right, forest.leaf_value):  # fmt: skip
                array.flags.writeable = False
            if self._kernel_result_is_scores and self._kneighbors is None:
                self._compiled_model = self._compile_model()
        else:
            if self.lof_ is not None:
                self._neighbours = NeighbourIndex(self.lof_, model.local_outlier_factor_)
            if "isolation_forest" in members:
                self._vectorised = VectorisedForest(self.forest_)
        self.check_against_reference()

    def _compile_model(self) -> object:
        """The arrays of the scaling, the neighbour search and the three members, checked
        once by the kernel and held for ``explain_rows``."""
        assert self.lof_ is not None
        lof, blocks = self.lof_, self._blocks
        return self._compiled.compiled_model(
            self.center_,
            self.scale_,
            blocks.rows,
            blocks.screen,
            blocks.index,
            blocks.starts,
            blocks.lo,
            blocks.hi,
            blocks.groups,
            blocks.group_lo,
            blocks.group_hi,
            lof.n_neighbors,
            *self.forest_.kernel_arrays(),
            lof.k_distance,
            lof.lrd,
            self.zscore_center_,
            self.zscore_scale_,
        )

    def probe_rows(self) -> NDArray[np.float64]:
        """Rows for the load-time check (raw units): training rows (duplicates), near and
        far ones; drawn in the scaled space the members see, then unscaled."""
        rng = np.random.default_rng(0)
        if self.lof_ is not None:
            fit_X = self.lof_.train_rows
            picked = fit_X[rng.choice(fit_X.shape[0], size=min(16, fit_X.shape[0]), replace=False)]
            spread = fit_X.std(axis=0) + 1e-12
            centre = fit_X.mean(axis=0)
        else:
            picked = rng.normal(size=(16, self.n_features_in_))
            spread, centre = np.ones(self.n_features_in_), np.zeros(self.n_features_in_)
        near = picked + rng.normal(scale=0.1, size=picked.shape) * spread
        far = centre + rng.normal(scale=6.0, size=(8, picked.shape[1])) * spread
        scaled = np.vstack([picked, near, far])
        return np.ascontiguousarray(scaled * self.scale_ + self.center_)

    def check_against_reference(self) -> None:
        """Raise ``IncompatibleEstimatorError`` if a probe set's scores differ from sklearn's."""
        probe = self.probe_rows()
        ours = self.detector_scores(probe)
        theirs = self.model.detector_scores(probe)
        worst = (np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))).max(axis=0)
        if not (worst <= SELF_CHECK_TOLERANCE).all():
            names = ", ".join(
                f"{name} by {gap:.3g}"
                for name, gap in zip(self.detectors, worst, strict=True)
                if not gap <= SELF_CHECK_TOLERANCE
            )
            raise IncompatibleEstimatorError(
                f"scikit-learn {sklearn.__version__}: the fast scorer's scores differ from the "
                f"estimators' own score_samples ({names}) on the load-time probe set; a "
                "fitted attribute it reads (see anomaly_api/detection/fast/lof.py and "
                "forest.py) changed meaning. Serve with ANOMALY_INFERENCE_BACKEND=sklearn."
            )

    def neighbours(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Distances and training indices of each (scaled) row's k nearest training rows."""
        assert self.lof_ is not None
        k = self.lof_.n_neighbors
        if self._kneighbors is not None:
            dist, ind = self._kneighbors(X, n_neighbors=k)
            return (
                np.ascontiguousarray(dist, dtype=np.float64),
                np.ascontiguousarray(ind, dtype=np.int64),
            )
        if self.kernel == "numpy":
            return self._neighbours.query(X)
        compiled = self._compiled
        dist = np.empty((X.shape[0], k))
        ind = np.empty((X.shape[0], k), dtype=np.int64)
        ties = np.empty(X.shape[0], dtype=np.int64)
        threads = compiled.max_threads() if X.shape[0] >= compiled.PARALLEL_ROWS else 1
        compiled.knn_blocks(X, *self._blocks.kernel_arrays(), k, dist, ind, ties, threads)
        if not np.count_nonzero(ties):  # the usual case: no tie at the k-th distance
            return dist, ind
        tied = np.flatnonzero(ties)
        if np.isfinite(dist[tied, -1]).all():
            # A training row left out is exactly as far as the k-th neighbour (duplicates,
            # or distances rounded alike at huge magnitudes): which one counts is a tie
            # scikit-learn's KD-tree breaks in its traversal order. Ask it, for those rows.
            tied_dist, tied_ind = self.lof_estimator.kneighbors(X[tied], n_neighbors=k)
            dist[tied] = tied_dist
            ind[tied] = tied_ind
        return dist, ind

    def _checked_neighbours(
        self, X: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """``neighbours``, refused when the distances overflow."""
        dist, ind = self.neighbours(X)
        # Squared distances overflow float64 beyond |x| ~ 1e154; the neighbour search then
        # finds fewer than k neighbours, which must never be used. Distances are >= 0: the
        # largest k-th one is finite exactly when all are (a NaN fails the test too).
        if not np.maximum.reduce(dist[:, -1], axis=None, initial=0.0) < np.inf:
            raise TooExtremeError("feature values too large to score: distances overflow float64")
        return dist, ind

    def detector_scores(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each detector's ``score_samples``, shape (n_samples, n_detectors).

        ``X`` (raw units) should be a C-contiguous float64 array of shape (n_samples,
        n_features); anything else is converted first. Non-finite values raise
        ``ValueError``, as in the reference path, and so do values so large that
        distances overflow.
        """
        return self.scaled_scores(X)[1]

    def scaled_scores(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``X`` in the members' units and ``detector_scores(X)``, as
        ``AnomalyEnsemble.scaled_scores`` (the same scaled values, bit for bit)."""
        data = np.ascontiguousarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_ or data.shape[0] == 0:
            raise ValueError(
                f"expected shape (n_samples>0, {self.n_features_in_}), got {data.shape}"
            )
        with np.errstate(over="ignore"):
            scaled = apply_scaling(data, self.center_, self.scale_)
        if not np.isfinite(scaled).all():  # NaN and infinity stay so when scaled
            if not np.isfinite(data).all():
                raise ValueError("input contains NaN or infinity")
            raise TooExtremeError("feature values too large to score: scaling overflows float64")
        if self._kernel_result_is_scores:
            return scaled, self._compiled_scores(scaled)
        columns: dict[str, NDArray[np.float64]] = {}
        if self._kernel_columns:
            columns.update(self._kernel_scores(scaled))
        if "pca" in self.detectors:
            pca = self.model.pca_
            t2, q, _ = pca_statistics(scaled, pca.mean_, pca.components_, pca.explained_variance_)
            columns["pca"] = pca_score(t2, q, pca.t2_limit_, pca.q_limit_)
        return scaled, np.column_stack([columns[name] for name in self.detectors])

    def _kernel_scores(self, scaled: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """IsolationForest, LOF and z-score columns of the members the model has."""
        if self.kernel == "c":
            result = self._compiled_scores(scaled)
            return {name: result[:, _KERNEL_MEMBERS.index(name)] for name in self._kernel_columns}
        lof = self.lof_
        out: dict[str, NDArray[np.float64]] = {}
        if "isolation_forest" in self._kernel_columns:
            out["isolation_forest"] = self._vectorised.score_samples(scaled)
        if lof is not None:
            dist, ind = self._checked_neighbours(scaled)
            out["local_outlier_factor"] = lof_scores(dist, ind, lof.k_distance, lof.lrd)
        if "zscore" in self._kernel_columns:
            out["zscore"] = zscore_scores(scaled, self.zscore_center_, self.zscore_scale_)
        return out

    def _compiled_scores(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        """The compiled kernel's output for the scaled rows: one column per member of
        ``_KERNEL_MEMBERS``, in that order."""
        n_rows = scaled.shape[0]
        lof = self.lof_
        if lof is None:  # the kernel still reads one neighbour per row
            dist, ind = np.zeros((n_rows, 1)), np.zeros((n_rows, 1), dtype=np.int64)
            k_distance, lrd = np.ones(1), np.ones(1)
        else:
            dist, ind = self._checked_neighbours(scaled)
            k_distance, lrd = lof.k_distance, lof.lrd
        result = np.empty((n_rows, len(_KERNEL_MEMBERS)))
        self._compiled.score_rows(
            scaled,
            dist,
            ind,
            *self.forest_.kernel_arrays(),
            k_distance,
            lrd,
            self.zscore_center_,
            self.zscore_scale_,
            result,
        )
        return result

    def combine(self, scores: NDArray[np.float64], X: ArrayLike | None = None) -> EnsembleOutput:
        """The ensemble's own decision rule (see ``AnomalyEnsemble.combine``)."""
        return self.model.combine(scores, X)

    def explain(self, X: ArrayLike) -> EnsembleOutput:
        """Scores, votes, decision, severity and contributions for each sample: the
        model's ``decide`` on ``scaled_scores(X)``, bit for bit.

        For the default members on the compiled kernel, one kernel call (``explain_rows``)
        computes all of it but the confidence, which is NumPy's (``confidence_from_score``:
        NumPy's ``exp`` is not the C library's on every CPU), and the output is marked
        ``finite``. Rows the kernel declines (a value not finite once scaled, a tie at the
        k-th neighbour, overflowing distances, a score, margin or sum not finite, a margin
        of -0.0) take the reference path, which answers, clips or refuses them.
        """
        if self._compiled_model is not None and isinstance(X, np.ndarray) and X.ndim == 2:
            out = self._compiled_explain(X)
            if out is not None:
                return out
        scaled, scores = self.scaled_scores(X)
        return self.model.decide(scores, scaled)

    def _compiled_explain(self, X: NDArray[np.float64]) -> EnsembleOutput | None:
        """``explain`` in one kernel call, or None where the kernel declines the rows."""
        model, n = self.model, X.shape[0]
        scores = np.empty((n, len(_KERNEL_MEMBERS)))
        votes = np.empty((n, len(_KERNEL_MEMBERS)), dtype=np.bool_)
        anomaly_score, severity = np.empty(n), np.empty(n)
        is_anomaly = np.empty(n, dtype=np.bool_)
        shares = np.empty((n, self.n_features_in_))
        compiled = self._compiled
        threads = compiled.max_threads() if n >= compiled.PARALLEL_ROWS else 1
        declined = compiled.explain_rows(
            self._compiled_model,
            X,
            model.offsets_,
            model.scales_,
            model.min_votes,
            scores,
            votes,
            anomaly_score,
            severity,
            is_anomaly,
            shares,
            threads,
        )
        if declined:
            return None
        return EnsembleOutput(
            scores=scores,
            votes=votes,
            anomaly_score=anomaly_score,
            confidence=confidence_from_score(anomaly_score),
            is_anomaly=is_anomaly,
            severity=severity,
            contributions=shares,
            finite=True,
        )


def compile_scorer(model: AnomalyEnsemble, kernel: Kernel = "c") -> FastScorer:
    """Build the fast scorer for a fitted ensemble (once, at model load time)."""
    return FastScorer(model, kernel)


__all__ = ["FastScorer", "IncompatibleEstimatorError", "Kernel", "compile_scorer"]
