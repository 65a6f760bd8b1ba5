"""The fast exact inference path: the fitted ensemble's scores without scikit-learn's overhead.

The input scaling and the PCA member are plain NumPy matrix products shared with the
reference ensemble, the same on both kernels. For the other members:
``compile_scorer(model)`` flattens the IsolationForest into arrays, indexes the LOF
training data in a ``cKDTree`` next to its fitted k-distances and lrd, and finishes
the batch either in one numba-compiled loop (``kernel="numba"``, fastest per row) or in
vectorised NumPy (``kernel="numpy"``, no compiler and ~110 MB less memory).
``FastScorer.detector_scores`` equals ``AnomalyEnsemble.detector_scores`` to ~1e-15
(relative), so every decision is the same.
"""

from anomaly_api.detection.fast.scorer import FastScorer, Kernel, compile_scorer

__all__ = ["FastScorer", "Kernel", "compile_scorer"]
