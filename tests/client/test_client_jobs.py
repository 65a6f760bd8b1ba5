"""The client's model and training-job calls: against a real ``anomaly-api serve`` (the
upload, the wait, the listings) and, where a job must be caught mid-way, against the app
in-process with its worker held (``api.jobs_holding``) rather than racing it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.api.app import create_app
from anomaly_api.client import (
    AnomalyApiError,
    AnomalyClient,
    AsyncAnomalyClient,
    ModelDetail,
    ModelSummary,
    ModelVersion,
)
from anomaly_api.data.synthetic import generate_sensor_data
from api.jobs_holding import GATE_ENV, held, held_worker, wait_for
from api_testing import NORMAL, lifespan, make_settings


def small_csv(path: Path) -> Path:
    generate_sensor_data(300, seed=1).to_csv(path, index=False)
    return path


def version_back(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "created_at": v.created_at,
        "kind": v.kind,
        "features": list(v.features),
        "thresholds": dict(v.thresholds),
        "held_out_f1": v.held_out_f1,
        "parent_version": v.parent_version,
    }


def detail_back(m: ModelDetail) -> dict[str, Any]:
    """``m`` written back from its attributes only (never ``raw``)."""
    return {
        "name": m.name,
        "aliases": dict(m.aliases),
        "production_history": list(m.production_history),
        "kind": m.kind,
        "features": None if m.features is None else list(m.features),
        "versions": [version_back(v) for v in m.versions],
        "alias_log": list(m.alias_log),
        "loaded_versions": list(m.loaded_versions),
    }


def summary_back(m: ModelSummary) -> dict[str, Any]:
    return {"name": m.name, "aliases": dict(m.aliases), "loaded_versions": list(m.loaded_versions)}


def test_every_field_of_the_model_listings_reaches_the_result(fleet_url: str) -> None:
    with AnomalyClient(fleet_url) as client, httpx.Client(base_url=fleet_url) as http:
        client.predict(NORMAL, model="pumps")  # loaded: loaded_versions is not empty
        listed = client.models()
        assert {"models": [summary_back(m) for m in listed]} == http.get("/models").json()
        assert {m.name for m in listed} >= {"default", "pumps"}
        pumps = client.model("pumps")
        assert detail_back(pumps) == http.get("/models/pumps").json()
        assert pumps.aliases["production"] == "p1"
        assert pumps.loaded_versions == ("p1",)
        assert pumps.versions[0].thresholds
        with pytest.raises(AnomalyApiError) as unknown:
            client.model("nope")
        assert unknown.value.code == "model_not_found"


def test_a_version_trained_from_a_local_file_is_served(fleet_url: str, tmp_path: Path) -> None:
    data = small_csv(tmp_path / "fans.csv")
    with AnomalyClient(fleet_url) as client:
        queued = client.train("fans", data=data, seed=3, version="f1", detectors=["zscore", "pca"])
        assert queued.model == "fans"
        assert queued.status in ("queued", "running")
        done = client.wait_for_job(queued.job_id, timeout=300.0, poll=0.2)
        assert done.status == "succeeded", done.error
        assert done.version == "f1"
        assert done.metrics
        assert client.job(queued.job_id) == done
        assert client.cancel_job(queued.job_id).status == "succeeded"  # finished: unchanged
        fans = client.model("fans")
        assert [v.version for v in fans.versions] == ["f1"]
        assert set(fans.versions[0].thresholds) == {"zscore", "pca"}
        assert client.predict(NORMAL, model="fans").model_version == "f1"


def test_job_errors_are_api_errors(fleet_url: str, tmp_path: Path) -> None:
    with AnomalyClient(fleet_url) as client:
        with pytest.raises(AnomalyApiError) as missing:
            client.job("no-such-job")
        assert missing.value.status_code == 404
        with pytest.raises(AnomalyApiError) as bad:
            client.train("fans", data=b"a,b\n1,2\n", features=["nope"])
        assert bad.value.status_code == 422
        assert "nope" in bad.value.message
        with pytest.raises(AnomalyApiError) as no_dir:
            client.train("fans", path_on_server="x.csv")  # no training data directory
        assert no_dir.value.status_code == 422


def test_exactly_one_data_source_is_given() -> None:
    with AnomalyClient("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="exactly one"):
            client.train("m")
        with pytest.raises(ValueError, match="exactly one"):
            client.train("m", data=b"x", synthetic=True)


async def test_the_async_client_cancels_a_held_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv(GATE_ENV, str(gate))
    (tmp_path / "artifacts").mkdir()
    app = create_app(make_settings(tmp_path / "artifacts", model_version=None))
    async with lifespan(app) as manager:
        manager._state["jobs"].worker = held_worker
        transport = httpx.ASGITransport(app=manager.app)
        async with AsyncAnomalyClient("http://127.0.0.1", transport=transport) as client:
            job = await client.train("m", data=small_csv(tmp_path / "m.csv").read_bytes())
            await asyncio.to_thread(wait_for, held(gate, job.job_id))
            assert (await client.job(job.job_id)).status == "running"
            await client.cancel_job(job.job_id)
            done = await client.wait_for_job(job.job_id, timeout=120.0, poll=0.05)
            assert done.status == "cancelled"
            assert done.version is None
            assert [m.name for m in await client.models()] == []
