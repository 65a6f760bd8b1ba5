"""The scorer seam: what turns a float64 matrix into the detectors' scores and decisions.

``Predictor`` depends only on the ``Scorer`` protocol. ``build_scorer`` is the one place
that picks the implementation for ``Settings.inference_backend``: the compiled fast path
(``anomaly_api.detection.fast``) or plain scikit-learn, the reference.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.ensemble import EnsembleOutput

__all__ = ["Scorer", "build_scorer"]


class Scorer(Protocol):
    """Computes ``AnomalyEnsemble.detector_scores`` and ``explain`` for a C-contiguous
    float64 matrix."""

    def detector_scores(self, X: NDArray[np.float64], /) -> NDArray[np.float64]:
        """Scores of shape ``(n_samples, n_detectors)``, lower = more abnormal."""
        ...

    def scaled_scores(
        self, X: NDArray[np.float64], /
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The rows in the members' units and their scores: what
        ``AnomalyEnsemble.decide`` takes, so the rows are scaled once."""
        ...

    def explain(self, X: NDArray[np.float64], /) -> EnsembleOutput:
        """``AnomalyEnsemble.decide`` on ``scaled_scores(X)``: the decision of every row
        (the compiled fast path computes it in one kernel call)."""
        ...


def build_scorer(model: AnomalyEnsemble, backend: Literal["fast", "numpy", "sklearn"]) -> Scorer:
    """The scorer for ``backend``; ``"sklearn"`` is the fitted ensemble itself (the reference).

    ``"fast"`` and ``"numpy"`` give the same scores (to ~1e-15); ``"fast"`` runs the C
    kernel compiled when the package was built, ``"numpy"`` needs no compiler.
    """
    if backend in ("fast", "numpy"):
        from anomaly_api.detection.fast import compile_scorer

        return compile_scorer(model, "c" if backend == "fast" else "numpy")
    return model
