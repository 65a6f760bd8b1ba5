"""The fast exact inference path: the fitted ensemble's scores without scikit-learn's overhead.

``compile_scorer(model)`` flattens the IsolationForest into arrays, indexes the LOF
training data in a ``cKDTree`` next to its fitted k-distances and lrd, and compiles
one numba loop that scores a batch. ``FastScorer.detector_scores`` equals
``AnomalyEnsemble.detector_scores`` to ~1e-15, so every decision is the same.
"""

from anomaly_api.detection.fast.scorer import FastScorer, compile_scorer

__all__ = ["FastScorer", "compile_scorer"]
