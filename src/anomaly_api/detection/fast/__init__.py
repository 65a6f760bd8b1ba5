"""The fast exact inference path: the fitted ensemble's scores without scikit-learn's overhead.

The input scaling and the PCA member are plain NumPy matrix products shared with the
reference ensemble, the same on both kernels. For the other members:
``compile_scorer(model)`` flattens the IsolationForest into arrays, reads the LOF's
training rows, k-distances and lrd (``lof.read_fitted_lof``, the one place that reads
private scikit-learn attributes), and scores a batch either in the ahead-of-time
compiled C kernel (``kernel="c"``, the ``fast`` backend: a brute-force neighbour scan
and one loop per batch) or in vectorised NumPy with a SciPy KD-tree (``kernel="numpy"``,
no compiler). ``FastScorer.detector_scores`` equals ``AnomalyEnsemble.detector_scores``
to ~1e-15, so every decision is the same; a load-time check enforces it.
"""

from anomaly_api.detection.fast.lof import IncompatibleEstimatorError
from anomaly_api.detection.fast.scorer import FastScorer, Kernel, TooExtremeError, compile_scorer

__all__ = [
    "FastScorer",
    "IncompatibleEstimatorError",
    "Kernel",
    "TooExtremeError",
    "compile_scorer",
]
