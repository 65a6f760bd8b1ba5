"""Training through the API: ``POST /models/{name}/versions``, ``GET``/``DELETE /jobs/{id}``.

Jobs run in real worker processes (spawned); a test that must catch a job mid-way holds
it with ``jobs_holding.held_worker`` (trained, not yet published) instead of racing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_holding import GATE_ENV, held, held_worker, release, wait_for
from typer.testing import CliRunner

from anomaly_api.artifacts import read_manifest
from anomaly_api.cli.main import app as cli
from anomaly_api.config import Settings
from anomaly_api.data.synthetic import generate_sensor_data
from anomaly_api.registry import model_dir, resolve_alias
from anomaly_api.service.jobs import JobRunner
from api_testing import assert_error, make_settings, open_app_state, samples

CSV = {"Content-Type": "text/csv"}
ADMIN = {"X-API-Key": "admin-key"}


@asynccontextmanager
async def training_app(
    settings: Settings, *, hold: bool = False
) -> AsyncIterator[tuple[httpx.AsyncClient, JobRunner]]:
    """A client of a fresh app and its job runner (its workers held when ``hold``)."""
    async with open_app_state(settings) as (client, state):
        runner: JobRunner = state["jobs"]
        if hold:
            runner.worker = held_worker
        yield client, runner


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def settings(artifacts: Path, tiny_artifacts_dir: Path) -> Settings:
    artifacts.mkdir()
    return make_settings(artifacts, model_version=None, admin_api_keys=["admin-key"])


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "gate"
    directory.mkdir()
    monkeypatch.setenv(GATE_ENV, str(directory))
    return directory


def small_csv(rows: int = 300, seed: int = 1) -> bytes:
    return generate_sensor_data(rows, seed=seed).to_csv(index=False).encode()


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Poll the job until it is finished (each poll yields to the job's own task)."""
    for _ in range(6000):
        response = await client.get(f"/jobs/{job_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never finished: {job}")


async def job_counts(client: httpx.AsyncClient) -> dict[str, float]:
    """The training job series of ``/metrics``: ``{status or state: value}``."""
    found = samples((await client.get("/metrics")).text)
    return {
        labels[0][1]: value
        for (name, labels), value in found.items()
        if name in ("anomaly_training_jobs_total", "anomaly_training_jobs_active")
    }


def versions(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if (p / "manifest.json").is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_the_default_synthetic_data_trains_the_same_version_as_the_cli(
    settings: Settings, artifacts: Path, tmp_path: Path
) -> None:
    cli_dir = tmp_path / "cli-artifacts"
    result = CliRunner().invoke(
        cli,
        ["train", "--artifacts-dir", str(cli_dir), "--seed", "7", "--version", "v1"],
    )
    assert result.exit_code == 0, result.output
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/pumps/versions?seed=7&version=v1", json={"synthetic": True}, headers=ADMIN
        )
        assert response.status_code == 202, response.text
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["version"] == "v1"
    served = model_dir(artifacts, "pumps")
    ours, theirs = read_manifest(served, "v1"), read_manifest(cli_dir, "v1")
    assert ours.model_sha256 == theirs.model_sha256
    assert sha256(served / "v1" / "model.joblib") == ours.model_sha256
    assert ours.attachments == theirs.attachments
    assert ours.attachments
    assert ours.training_data.fingerprint == theirs.training_data.fingerprint
    assert job["metrics"] == theirs.metrics
    assert resolve_alias(artifacts, "pumps", "candidate") == "v1"
    assert resolve_alias(artifacts, "pumps") == "v1"  # its first version is production too
    assert not (served / ".staging").exists() or not any((served / ".staging").iterdir())


async def test_an_uploaded_csv_trains_like_the_cli_on_that_file(
    settings: Settings, artifacts: Path, tmp_path: Path
) -> None:
    data = tmp_path / "pumps.csv"
    data.write_bytes(small_csv())
    cli_dir = tmp_path / "cli-artifacts"
    args = ["train", "--data", str(data), "--artifacts-dir", str(cli_dir), "--version", "u1"]
    result = CliRunner().invoke(cli, [*args, "--detectors", "zscore,pca", "--seed", "3"])
    assert result.exit_code == 0, result.output
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/default/versions?version=u1&detectors=zscore,pca&seed=3",
            content=data.read_bytes(),
            headers=CSV | ADMIN,
        )
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/jobs/{response.json()['job_id']}"
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert read_manifest(artifacts, "u1").model_sha256 == read_manifest(cli_dir, "u1").model_sha256
    assert resolve_alias(artifacts, "default", "candidate") == "u1"


async def test_an_upload_above_the_limit_is_refused_413(settings: Settings) -> None:
    limited = settings.model_copy(update={"training_max_upload_bytes": 4096})
    async with training_app(limited) as (client, runner):
        response = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        assert_error(response, 413, "payload_too_large", "4096 bytes")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b"x" * 1000

        response = await client.post("/models/m/versions", content=chunks(), headers=CSV | ADMIN)
        assert_error(response, 413, "payload_too_large")
        assert runner.check_room() is None  # nothing was queued


async def test_a_column_the_header_lacks_is_422_naming_it(settings: Settings) -> None:
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/m/versions?label_column=broken_flag", content=small_csv(), headers=CSV | ADMIN
        )
        assert_error(response, 422, "invalid_input", "'broken_flag' (label_column)")
        response = await client.post(
            "/models/m/versions?features=temperature,nope", content=small_csv(), headers=CSV | ADMIN
        )
        assert_error(response, 422, "invalid_input", "'nope' (features)")


async def test_a_malformed_column_fails_the_job_naming_it(
    settings: Settings, artifacts: Path
) -> None:
    frame = generate_sensor_data(300, seed=1)
    frame["vibration"] = frame["vibration"].astype(object)
    frame.loc[17, "vibration"] = "n/a"
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/m/versions", content=frame.to_csv(index=False).encode(), headers=CSV | ADMIN
        )
        assert response.status_code == 202, response.text
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "failed"
    assert "'vibration'" in job["error"], job
    assert versions(model_dir(artifacts, "m")) == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("target_fpr=1.5", "target_fpr must be between 0 and 1"),
        ("detectors=zscore&min_votes=2", "min_votes"),
        ("timestamp_column=t", "need window"),
        ("window=8", "window with data needs timestamp_column"),
        ("colour=blue", "colour"),
    ],
)
async def test_bad_options_are_422_before_anything_is_queued(
    settings: Settings, query: str, fragment: str
) -> None:
    async with training_app(settings) as (client, _):
        response = await client.post(
            f"/models/m/versions?{query}", content=small_csv(), headers=CSV | ADMIN
        )
        assert response.status_code == 422, response.text
        assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["../etc", "Upper", ".hidden", "a" * 64, "a/b"])
async def test_model_names_that_try_path_tricks_are_refused(settings: Settings, name: str) -> None:
    async with training_app(settings) as (client, _):
        response = await client.post(
            f"/models/{name}/versions", json={"synthetic": True}, headers=ADMIN
        )
    assert response.status_code in (404, 422), response.text


async def test_without_the_admin_key_nothing_is_trained(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": [settings.admin_api_keys[0].__class__("c")]})
    async with training_app(keyed) as (client, _):
        response = await client.post("/models/m/versions", json={"synthetic": True})
        assert_error(response, 401, "missing_api_key")
        response = await client.post(
            "/models/m/versions", json={"synthetic": True}, headers={"X-API-Key": "c"}
        )
        assert_error(response, 403, "invalid_api_key")
        assert_error(await client.get("/jobs/abc"), 401, "missing_api_key")


async def test_an_unknown_job_is_404(settings: Settings) -> None:
    async with training_app(settings) as (client, _):
        assert_error(await client.get("/jobs/nope", headers=ADMIN), 404, "job_not_found")
        assert_error(await client.delete("/jobs/nope", headers=ADMIN), 404, "job_not_found")


async def test_paths_must_stay_inside_the_training_data_directory(
    settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    (root / "plant").mkdir(parents=True)
    (root / "plant" / "pumps.csv").write_bytes(small_csv())
    outside = tmp_path / "secret.csv"
    outside.write_bytes(small_csv())
    (root / "plant" / "link.csv").symlink_to(outside)
    configured = settings.model_copy(update={"training_data_dir": root})
    async with training_app(configured) as (client, _):
        for path in ("../secret.csv", str(outside), "plant/link.csv", "plant/../../secret.csv"):
            response = await client.post("/models/m/versions", json={"path": path}, headers=ADMIN)
            assert_error(response, 422, "invalid_input", "outside the training data directory")
        response = await client.post(
            "/models/m/versions", json={"path": "plant/none.csv"}, headers=ADMIN
        )
        assert_error(response, 422, "invalid_input", "no such file")
        response = await client.post(
            "/models/m/versions", json={"path": "plant/pumps.csv"}, headers=ADMIN
        )
        assert response.status_code == 202, response.text
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    async with training_app(settings) as (client, _):  # no directory configured
        response = await client.post(
            "/models/m/versions", json={"path": "plant/pumps.csv"}, headers=ADMIN
        )
        assert_error(response, 422, "invalid_input", "ANOMALY_TRAINING_DATA_DIR")


async def test_a_worker_killed_mid_job_leaves_no_version_and_a_failed_job(
    settings: Settings, artifacts: Path, gate: Path
) -> None:
    async with training_app(settings, hold=True) as (client, runner):
        response = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        job_id = response.json()["job_id"]
        await asyncio.to_thread(wait_for, held(gate, job_id))  # trained into staging, held
        staging = model_dir(artifacts, "m") / ".staging" / job_id
        assert versions(staging), "the held worker has written its version into staging"
        process = runner.running_process(job_id)
        assert process is not None
        assert process.pid is not None
        assert (await client.get(f"/jobs/{job_id}", headers=ADMIN)).json()["status"] == "running"
        os.kill(process.pid, signal.SIGKILL)
        job = await finished(client, job_id)
    assert job["status"] == "failed"
    assert "killed by signal 9" in job["error"], job
    assert versions(model_dir(artifacts, "m")) == []
    assert not staging.exists()


async def test_a_running_job_is_cancelled_and_publishes_nothing(
    settings: Settings, artifacts: Path, gate: Path
) -> None:
    async with training_app(settings, hold=True) as (client, _):
        response = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        job_id = response.json()["job_id"]
        await asyncio.to_thread(wait_for, held(gate, job_id))
        response = await client.delete(f"/jobs/{job_id}", headers=ADMIN)
        assert response.status_code == 202, response.text
        job = await finished(client, job_id)
        assert job["status"] == "cancelled", job
        again = await client.delete(f"/jobs/{job_id}", headers=ADMIN)  # finished: unchanged
        assert again.json()["status"] == "cancelled"
    assert versions(model_dir(artifacts, "m")) == []


async def test_a_full_queue_answers_429_with_retry_after(
    settings: Settings, artifacts: Path, gate: Path
) -> None:
    one_slot = settings.model_copy(
        update={"training_workers": 1, "training_max_queued": 1, "training_retry_after_s": 17}
    )
    async with training_app(one_slot, hold=True) as (client, _):
        first = (
            await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        ).json()["job_id"]
        await asyncio.to_thread(wait_for, held(gate, first))
        second = (
            await client.post("/models/m/versions", content=small_csv(seed=2), headers=CSV | ADMIN)
        ).json()["job_id"]
        assert (await client.get(f"/jobs/{second}", headers=ADMIN)).json()["status"] == "queued"
        refused = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        assert_error(refused, 429, "training_queue_full")
        assert refused.headers["retry-after"] == "17"
        ended = {"succeeded": 0.0, "failed": 0.0, "cancelled": 0.0}
        assert await job_counts(client) == ended | {"running": 1.0, "queued": 1.0}
        cancelled = await client.delete(f"/jobs/{second}", headers=ADMIN)  # a queued job
        assert cancelled.status_code == 202
        assert (await finished(client, second))["status"] == "cancelled"
        ended["cancelled"] = 1.0
        assert await job_counts(client) == ended | {"running": 1.0, "queued": 0.0}
        release(gate, first)
        job = await finished(client, first)
        assert job["status"] == "succeeded", job
        ended["succeeded"] = 1.0
        for _ in range(600):  # its record is written just before it leaves the queue
            if (counts := await job_counts(client))["running"] == 0:
                break
            await asyncio.sleep(0.05)
        assert counts == ended | {"running": 0.0, "queued": 0.0}
    assert versions(model_dir(artifacts, "m")) == [job["version"]]


async def test_a_parquet_upload_trains_and_a_broken_one_is_422(
    settings: Settings, artifacts: Path
) -> None:
    import io

    buffer = io.BytesIO()
    generate_sensor_data(300, seed=4).to_parquet(buffer, index=False)
    parquet = {"Content-Type": "application/vnd.apache.parquet"}
    async with training_app(settings) as (client, _):
        broken = await client.post(
            "/models/m/versions", content=b"PAR1 not really", headers=parquet | ADMIN
        )
        assert_error(broken, 422, "invalid_input", "cannot be read")
        response = await client.post(
            "/models/m/versions?label_column=is_anomaly",
            content=buffer.getvalue(),
            headers=parquet | ADMIN,
        )
        assert response.status_code == 202, response.text
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert versions(model_dir(artifacts, "m")) == [job["version"]]
    assert job["metrics"]["test"] is not None  # labelled: evaluated on held-out rows


async def test_other_bodies_are_415_and_json_must_name_one_source(settings: Settings) -> None:
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/m/versions", content=b"x", headers={"Content-Type": "text/plain"} | ADMIN
        )
        assert_error(response, 415, "unsupported_media_type", "text/csv")
        for body in ({}, {"path": "a.csv", "synthetic": True}):
            response = await client.post("/models/m/versions", json=body, headers=ADMIN)
            assert_error(response, 422, "invalid_request", "exactly one of path and synthetic")


async def test_a_time_aware_upload_trains_like_the_cli(
    settings: Settings, artifacts: Path, tmp_path: Path
) -> None:
    data = tmp_path / "stream.csv"
    data.write_bytes(generate_sensor_data(2000, seed=3).to_csv(index=False).encode())
    cli_dir = tmp_path / "cli-artifacts"
    args = ["train", "--data", str(data), "--artifacts-dir", str(cli_dir), "--version", "t1"]
    result = CliRunner().invoke(cli, [*args, "--window", "12", "--timestamp-column", "timestamp"])
    assert result.exit_code == 0, result.output
    async with training_app(settings) as (client, _):
        response = await client.post(
            "/models/stream/versions?window=12&timestamp_column=timestamp&version=t1",
            content=data.read_bytes(),
            headers=CSV | ADMIN,
        )
        assert response.status_code == 202, response.text
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    ours = read_manifest(model_dir(artifacts, "stream"), "t1")
    assert ours.time_aware is not None
    assert ours.time_aware.window == 12
    assert ours.model_sha256 == read_manifest(cli_dir, "t1").model_sha256


@pytest.mark.process  # a throwaway redis-server, killed
async def test_a_job_table_that_does_not_answer_is_503(settings: Settings, tmp_path: Path) -> None:
    from anomaly_api.testing import throwaway_redis

    with throwaway_redis(tmp_path) as redis_server:
        with_redis = settings.model_copy(
            update={"redis_url": redis_server.url, "redis_connect_timeout_s": 0.5}
        )
        async with training_app(with_redis) as (client, _):
            redis_server.kill()
            response = await client.get("/jobs/abc", headers=ADMIN)
            assert_error(response, 503, "job_table_unavailable", "does not answer")
            assert response.headers["retry-after"] == "5"
            response = await client.post(
                "/models/m/versions", content=small_csv(), headers=CSV | ADMIN
            )
            assert_error(response, 503, "job_table_unavailable")


async def test_an_unwritable_model_directory_fails_the_job_saying_so(
    settings: Settings, artifacts: Path
) -> None:
    models = artifacts / "models"
    models.mkdir()
    (models / "m").write_text("a file where the model's directory should be")
    async with training_app(settings) as (client, _):
        response = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        job = await finished(client, response.json()["job_id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("cannot write the version:"), job


async def test_an_installation_without_pandas_says_it_cannot_train(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container image serves without pandas: training there is a clear 503, and
    serving itself never imports it (the image's own build checks that)."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_pandas(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "pandas" else real_find_spec(name, *args, **kwargs)

    async with training_app(settings) as (client, runner):
        monkeypatch.setattr(importlib.util, "find_spec", without_pandas)
        response = await client.post("/models/m/versions", content=small_csv(), headers=CSV | ADMIN)
        assert_error(response, 503, "training_unavailable", "pandas is not installed")
        assert runner.counts().running == runner.counts().queued == 0
