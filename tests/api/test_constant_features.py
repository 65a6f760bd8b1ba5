"""A model with a feature constant in training, served: quiet while it holds, flags a move,
and readings too large for its floored spread are a clear 4xx on every backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_api.data.loading import Dataset
from anomaly_api.training.pipeline import train_and_save
from api_testing import make_settings, serve_app


@pytest.fixture(scope="module")
def valve_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts_dir = tmp_path_factory.mktemp("valve")
    X = np.random.default_rng(0).normal(size=(400, 3))
    X[:, 1] = 0.0  # the valve never moved in training: spread floored at 1e-6
    dataset = Dataset(X=X, feature_names=["a", "valve", "b"], y=None, kinds=None, source="t")
    train_and_save(dataset, artifacts_dir)
    return artifacts_dir


@pytest.mark.parametrize("backend", ["fast", "numpy", "sklearn"])
async def test_a_constant_feature_is_quiet_until_it_moves(valve_model: Path, backend: str) -> None:
    async with serve_app(make_settings(valve_model, inference_backend=backend)) as client:
        held = await client.post("/predict", json={"features": [0.1, 0.0, 0.2]})
        moved = await client.post("/predict", json={"features": [0.1, 0.5, 0.2]})
        huge = await client.post("/predict", json={"features": [0.1, 1e150, 0.2]})
    assert held.status_code == moved.status_code == 200
    assert held.json()["is_anomaly"] is False
    assert moved.json()["is_anomaly"] is True
    assert moved.json()["contributions"][0]["feature"] == "valve"
    # 1e150 / 1e-6 squared overflows the fast paths' distances: refused as too extreme;
    # scikit-learn's own path scores it (an infinite LOF score, clamped)
    if backend == "sklearn":
        assert huge.status_code == 200
        assert huge.json()["is_anomaly"] is True
    else:
        assert huge.status_code == 422
        assert huge.json()["error"]["message"] == "feature values are too extreme to be scored"
