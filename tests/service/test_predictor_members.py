"""The unchanged service serves a model with other members (here all four) on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import numpy as np
import pytest

from anomaly_api.artifacts import build_manifest, load_artifact, save_artifact
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.service.cache import InMemoryPredictionCache
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.scorer import build_scorer

ALL = ("isolation_forest", "local_outlier_factor", "zscore", "pca")
NAMES = [f"f{i}" for i in range(6)]


@pytest.fixture(scope="module")
def four_member_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)) * np.array([0.1, 1.0, 10.0, 100.0, 1.0, 3000.0])
    model = AnomalyEnsemble(detectors=ALL, min_votes=2, n_estimators=20).fit(X)
    root = tmp_path_factory.mktemp("four")
    manifest = build_manifest(
        model, NAMES, X, version="four-1", created_at=datetime.now(UTC), source="t", n_rows=500
    )
    save_artifact(model, manifest, root)
    return root


@pytest.mark.parametrize("backend", ["sklearn", "numpy", "fast"])
def test_every_backend_serves_four_members(four_member_dir: Path, backend: str) -> None:
    artifact = load_artifact(four_member_dir)
    predictor = Predictor(
        artifact,
        scorer=build_scorer(artifact.model, backend),  # type: ignore[arg-type]
        cache=InMemoryPredictionCache(max_entries=100, ttl_s=60.0),
        cache_prefix="members:",
        offload_min_rows=64,
    )
    assert predictor.detector_names == ALL
    centre = artifact.model.center_.tolist()
    far = (artifact.model.center_ + 12.0 * artifact.model.scale_).tolist()
    got = anyio.run(predictor.score_rows, [centre, far]).predictions
    assert got.scores.shape == got.votes.shape == (2, 4)
    assert got.is_anomaly.tolist() == [False, True]
    reference = artifact.model.explain(np.array([centre, far]))
    np.testing.assert_allclose(got.anomaly_score, reference.anomaly_score, rtol=1e-9)
