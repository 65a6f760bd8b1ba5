"""Operations features of the app, in-process: request ids, /metrics, API keys, reload."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.api.app import create_app
from anomaly_api.artifacts import MODEL_FILE
from api_testing import ANOMALOUS, NORMAL, make_settings, open_app, serve_app


def _metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


# --- request ids -------------------------------------------------------------------------


async def test_request_id_is_echoed_or_created(tiny_artifacts_dir: Path) -> None:
    async with serve_app(make_settings(tiny_artifacts_dir)) as client:
        given = await client.get("/health/live", headers={"X-Request-ID": "trace-42.a:b"})
        assert given.headers["X-Request-ID"] == "trace-42.a:b"
        made = await client.get("/health/live")
        assert len(made.headers["X-Request-ID"]) == 32
        assert (
            made.headers["X-Request-ID"]
            != (await client.get("/health/live")).headers["X-Request-ID"]
        )


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "semi;colon", "ünïcode".encode()])
async def test_malformed_request_id_is_replaced(tiny_artifacts_dir: Path, bad: str | bytes) -> None:
    async with serve_app(make_settings(tiny_artifacts_dir)) as client:
        response = await client.get("/health/live", headers={"X-Request-ID": bad})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] != bad
    assert len(response.headers["X-Request-ID"]) == 32


async def test_error_body_carries_request_id(tiny_artifacts_dir: Path) -> None:
    async with serve_app(make_settings(tiny_artifacts_dir)) as client:
        response = await client.post(
            "/predict", json={"features": [1.0]}, headers={"X-Request-ID": "req-7"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["request_id"] == "req-7"
    assert response.headers["X-Request-ID"] == "req-7"


async def test_access_log_line_has_the_request_fields(
    tiny_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="anomaly_api.access")
    async with serve_app(make_settings(tiny_artifacts_dir)) as client:
        await client.post("/predict", json={"features": NORMAL})
        body = {"observations": [{"features": NORMAL}, {"features": ANOMALOUS}]}
        await client.post("/predict/batch", json=body, headers={"X-Request-ID": "log-1"})
    (record,) = [r for r in caplog.records if getattr(r, "request_id", None) == "log-1"]
    assert record.__dict__["method"] == "POST"
    assert record.__dict__["route"] == "/predict/batch"
    assert record.__dict__["status"] == 200
    assert record.__dict__["rows"] == 2
    assert record.__dict__["cache_hits"] == 1  # NORMAL was cached by the first request
    assert record.__dict__["model_version"] == "tiny-1"
    assert record.__dict__["latency_ms"] > 0


# --- /metrics ----------------------------------------------------------------------------


async def test_metrics_count_requests_predictions_and_model(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir)
    create_app(settings)  # a second app in the same process must not clash
    async with serve_app(settings) as client:
        await client.post("/predict", json={"features": NORMAL})
        await client.post("/predict", json={"features": NORMAL})
        await client.post("/predict", json={"features": [1.0]})
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    ok = _metric(text, "anomaly_http_requests_total", route="/predict", status="200")
    assert ok == 2
    assert _metric(text, "anomaly_http_requests_total", route="/predict", status="422") == 1
    count = "anomaly_http_request_duration_seconds_count"
    assert _metric(text, count, route="/predict", status="200") == 2
    assert _metric(text, "anomaly_predictions_total", outcome="normal") == 2
    assert _metric(text, "anomaly_batch_rows_count") == 2
    assert _metric(text, "anomaly_model_inference_seconds_count") == 1  # second was cached
    assert _metric(text, "anomaly_cache_operations_total", result="hit") == 1
    assert _metric(text, "anomaly_cache_operations_total", result="miss") == 1
    assert _metric(text, "anomaly_cache_breaker_state", state="closed") == 1
    assert _metric(text, "anomaly_model_info", version="tiny-1") == 1
    assert _metric(text, "anomaly_rolling_anomaly_rate") == 0


# --- API keys ----------------------------------------------------------------------------


async def test_api_keys_guard_prediction_and_admin_routes(tiny_artifacts_dir: Path) -> None:
    hashed = hashlib.sha256(b"hashed-client-key").hexdigest()
    settings = make_settings(
        tiny_artifacts_dir,
        api_keys=["client-key"],
        api_key_hashes=[hashed],
        admin_api_keys=["admin-key"],
    )
    body = {"features": NORMAL}
    async with serve_app(settings) as client:
        missing = await client.post("/predict", json=body)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_api_key"
        wrong = await client.post("/predict", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        for headers in (
            {"X-API-Key": "client-key"},
            {"Authorization": "Bearer client-key"},
            {"X-API-Key": "hashed-client-key"},
            {"X-API-Key": "admin-key"},
        ):
            assert (await client.post("/predict", json=body, headers=headers)).status_code == 200
        assert (await client.get("/model/info")).status_code == 401
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        admin = "/admin/reload"
        assert (await client.post(admin)).status_code == 401
        assert (await client.post(admin, headers={"X-API-Key": "client-key"})).status_code == 403
        assert (await client.post(admin, headers={"X-API-Key": "admin-key"})).status_code == 200


async def test_health_and_metrics_can_be_protected(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(
        tiny_artifacts_dir,
        api_keys=["k"],
        auth_protect_health=True,
        auth_protect_metrics=True,
    )
    async with serve_app(settings) as client:
        assert (await client.get("/health")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"X-API-Key": "k"})).status_code == 200


async def test_keys_never_reach_the_logs(
    tiny_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tiny_artifacts_dir, api_keys=["s3cret-client"])
    async with serve_app(settings) as client:
        await client.post(
            "/predict", json={"features": NORMAL}, headers={"X-API-Key": "s3cret-client"}
        )
        await client.post(
            "/predict", json={"features": NORMAL}, headers={"X-API-Key": "s3cret-wrong"}
        )
    assert caplog.records
    for record in caplog.records:
        assert "s3cret" not in str(record.__dict__)


# --- reload ------------------------------------------------------------------------------


async def test_reload_swaps_version_everywhere_at_once(two_versions: Path) -> None:
    async with open_app(make_settings(two_versions)) as (client, _):
        before = await client.post("/predict", json={"features": NORMAL})
        assert before.json()["model_version"] == "tiny-1"
        reload = await client.post("/admin/reload", params={"version": "tiny-2"})
        assert reload.status_code == 200, reload.text
        assert reload.json()["previous_version"] == "tiny-1"
        assert reload.json()["model_version"] == "tiny-2"
        assert (await client.get("/model/info")).json()["version"] == "tiny-2"
        assert (await client.get("/health")).json()["model_version"] == "tiny-2"
        metrics = (await client.get("/metrics")).text
        assert _metric(metrics, "anomaly_model_info", version="tiny-2") == 1
        assert _metric(metrics, "anomaly_model_info", version="tiny-1") is None
        after = (await client.post("/predict", json={"features": NORMAL})).json()
        assert after["model_version"] == "tiny-2"
        assert after["cached"] is False  # tiny-1's cached answer is not served
        assert after["anomaly_score"] != before.json()["anomaly_score"]
        back = await client.post("/admin/reload")  # no version: LATEST (tiny-1)
        assert back.json()["model_version"] == "tiny-1"
        assert (await client.post("/predict", json={"features": NORMAL})).json()["cached"] is True


async def test_failed_reloads_keep_the_old_model(
    tmp_path: Path, fit_version: Callable[..., Path]
) -> None:
    fit_version(tmp_path, "tampered", seed=3)
    fit_version(tmp_path, "tiny-1", seed=0)
    model_file = tmp_path / "tampered" / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes() + b"\x00")
    async with open_app(make_settings(tmp_path)) as (client, _):
        missing = await client.post("/admin/reload", params={"version": "no-such-version"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_version_not_found"
        tampered = await client.post("/admin/reload", params={"version": "tampered"})
        assert tampered.status_code == 409
        assert tampered.json()["error"]["code"] == "model_reload_failed"
        assert "integrity check failed" in tampered.json()["error"]["message"]
        assert "still serving 'tiny-1'" in tampered.json()["error"]["message"]
        bad_name = await client.post("/admin/reload", params={"version": "../etc"})
        assert bad_name.status_code == 422
        assert (await client.get("/model/info")).json()["version"] == "tiny-1"
        predicted = await client.post("/predict", json={"features": NORMAL})
        assert predicted.json()["model_version"] == "tiny-1"
        metrics = (await client.get("/metrics")).text
        assert _metric(metrics, "anomaly_model_reloads_total", result="failed") == 2


async def test_in_flight_request_finishes_on_its_model(two_versions: Path) -> None:
    """A request holding the old predictor answers with it even after a swap."""
    async with open_app(make_settings(two_versions)) as (client, runtime):
        old = runtime.require_predictor()
        await client.post("/admin/reload", params={"version": "tiny-2"})
        answers = (await old.score_rows([NORMAL])).predictions
        assert old.version == "tiny-1"
        assert runtime.require_predictor().version == "tiny-2"
        fresh = (await client.post("/predict", json={"features": NORMAL})).json()
        assert answers.anomaly_score[0] != fresh["anomaly_score"]
