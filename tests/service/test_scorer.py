"""build_scorer: each setting of inference_backend gets its implementation, all agreeing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import load_artifact
from anomaly_api.detection.fast import FastScorer
from anomaly_api.service.scorer import build_scorer


@pytest.mark.parametrize(("backend", "kernel"), [("fast", "c"), ("numpy", "numpy")])
def test_fast_backends_are_the_compiled_kernel_and_the_numpy_fallback(
    tiny_artifacts_dir: Path, backend: str, kernel: str
) -> None:
    model = load_artifact(tiny_artifacts_dir).model
    scorer = build_scorer(model, backend)  # type: ignore[arg-type]
    assert isinstance(scorer, FastScorer)
    assert scorer.kernel == kernel
    X = np.random.default_rng(0).normal(scale=2.0, size=(50, model.n_features_in_))
    np.testing.assert_allclose(
        scorer.detector_scores(X), model.detector_scores(X), rtol=0, atol=1e-9
    )


def test_sklearn_backend_is_the_fitted_ensemble_itself(tiny_artifacts_dir: Path) -> None:
    model = load_artifact(tiny_artifacts_dir).model
    assert build_scorer(model, "sklearn") is model
