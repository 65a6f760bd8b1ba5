"""The scorer seam: what turns a float64 matrix into the three detectors' scores.

``Predictor`` depends only on the ``Scorer`` protocol. ``build_scorer`` is the one place
that picks the implementation for ``Settings.inference_backend``: the compiled fast path
(``anomaly_api.detection.fast``) or plain scikit-learn, the reference.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble

__all__ = ["Scorer", "build_scorer"]


class Scorer(Protocol):
    """Computes ``AnomalyEnsemble.detector_scores`` for a C-contiguous float64 matrix."""

    def detector_scores(self, X: NDArray[np.float64], /) -> NDArray[np.float64]:
        """Scores of shape ``(n_samples, n_detectors)``, lower = more abnormal."""
        ...


def build_scorer(model: AnomalyEnsemble, backend: Literal["fast", "sklearn"]) -> Scorer:
    """The scorer for ``backend``; ``"sklearn"`` is the fitted ensemble itself (the reference)."""
    if backend == "fast":
        # Imported here: importing the fast path compiles its kernel (or loads it from cache).
        from anomaly_api.detection.fast import compile_scorer

        return compile_scorer(model)
    return model
