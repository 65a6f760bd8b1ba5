"""GET /health, /health/live, /health/ready and /model/info, with and without a model."""

from __future__ import annotations

from pathlib import Path

import httpx

from anomaly_api.config import Settings
from anomaly_api.testing import free_port
from api_testing import NORMAL, assert_error, make_settings, samples, serve_app


async def test_health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model_loaded"] is True
    assert body["model_version"] == "tiny-1"
    assert body["cache"] == {"backend": "memory", "ok": True}
    assert body["uptime_s"] >= 0


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model_version": "tiny-1"}


async def test_model_info(client: httpx.AsyncClient, tiny_artifacts_dir: Path) -> None:
    response = await client.get("/model/info")
    assert response.status_code == 200
    info = response.json()
    assert info["version"] == "tiny-1"
    assert info["n_features"] == 8
    assert info["feature_names"] == [f"f{i}" for i in range(8)]
    assert set(info["feature_stats"]) == set(info["feature_names"])
    assert set(info["feature_stats"]["f0"]) == {"mean", "std", "min", "max"}
    assert [d["name"] for d in info["detectors"]] == [
        "isolation_forest",
        "local_outlier_factor",
        "zscore",
    ]
    assert all(isinstance(d["threshold"], float) for d in info["detectors"])
    assert "2 of 3" in info["vote_rule"]
    assert info["min_votes"] == 2
    # How inputs are scaled and how contributions and severity are computed.
    assert set(info["scaling"]) == set(info["feature_names"])
    assert {"center", "scale"} <= set(info["scaling"]["f0"])
    assert "share" in info["contributions"]
    assert "anomaly_score" in info["severity"]
    assert "scikit-learn" in info["library_versions"]
    assert info["created_at"].startswith("20")
    assert info["inference_backend"] in {"fast", "sklearn"}
    # saved without a false-alarm statement (as models trained before it): "unknown"
    assert info["false_alarm_rate"]["method"] == "unknown"
    assert info["false_alarm_rate"]["expected"] is None
    # The thresholds served in /predict are the ones /model/info reports.
    predicted = (await client.post("/predict", json={"features": NORMAL})).json()
    for detector in info["detectors"]:
        assert predicted["detectors"][detector["name"]]["threshold"] == detector["threshold"]


async def test_without_a_model_the_service_runs_and_says_why(tmp_path: Path) -> None:
    async with serve_app(make_settings(tmp_path / "empty")) as http:
        health = await http.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unavailable"
        assert body["model_loaded"] is False
        assert body["model_version"] is None
        assert body["cache"] == {"backend": "memory", "ok": True}
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "model_version": None}
        predict = await http.post("/predict", json={"features": NORMAL})
        assert_error(predict, 503, "model_not_ready", "no trained model")
        batch = await http.post("/predict/batch", json={"observations": [{"features": NORMAL}]})
        assert_error(batch, 503, "model_not_ready", "no model is loaded")
        assert_error(await http.get("/model/info"), 503, "model_not_ready")


async def test_a_tampered_model_is_not_served(tmp_path: Path, tiny_artifacts_dir: Path) -> None:
    import shutil

    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, root)
    with (root / "tiny-1" / "model.joblib").open("ab") as handle:
        handle.write(b"tampered")
    async with serve_app(make_settings(root)) as http:
        assert (await http.get("/health")).status_code == 503
        assert_error(
            await http.post("/predict", json={"features": NORMAL}),
            503,
            "model_not_ready",
            "integrity check failed",
        )


async def test_unknown_version_is_not_served(settings: Settings) -> None:
    settings = settings.model_copy(update={"model_version": "no-such-version"})
    async with serve_app(settings) as http:
        assert_error(await http.get("/model/info"), 503, "model_not_ready", "no model version")


async def test_cache_outage_degrades_but_predictions_work(tiny_artifacts_dir: Path) -> None:
    """Redis unreachable: /health says degraded (still 200) and /predict answers."""
    settings = make_settings(
        tiny_artifacts_dir,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        prediction_cache="redis",
        redis_timeout_s=0.2,
    )
    async with serve_app(settings) as http:
        for _ in range(3):
            response = await http.post("/predict", json={"features": NORMAL})
            assert response.status_code == 200, response.text
            assert response.json()["cached"] is False
        health = await http.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert body["model_loaded"] is True
        assert body["cache"] == {"backend": "redis", "ok": False}


async def test_redis_outage_with_the_default_cache_shows_in_the_stream_breaker(
    tiny_artifacts_dir: Path,
) -> None:
    """The cache in the process never calls Redis: the stream store's breaker (tripped by the
    start-up warm-up and the /health probe) is what /health and /metrics report."""
    settings = make_settings(
        tiny_artifacts_dir, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2
    )
    async with serve_app(settings) as http:
        answers = [(await http.post("/predict", json={"features": NORMAL})).json() for _ in "ab"]
        body = (await http.get("/health")).json()
        metrics = samples((await http.get("/metrics")).text)
    assert [a["cached"] for a in answers] == [False, True]
    assert body["status"] == "degraded"
    assert body["cache"] == {"backend": "memory", "ok": True}
    assert body["streams"] == {"backend": "redis", "ok": False}
    assert metrics[("anomaly_streams_breaker_state", (("state", "open"),))] == 1
    assert metrics[("anomaly_cache_breaker_state", (("state", "closed"),))] == 1
