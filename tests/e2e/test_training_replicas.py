"""Two replicas share one job table in Redis: a job of one is read (and failed once its
replica died) by the other. Replica A is a real ``anomaly-api serve`` process whose
worker holds its job mid-way (trained into staging, not published) until A is killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.data.synthetic import generate_sensor_data
from anomaly_api.registry import model_dir
from anomaly_api.testing import SHARED_REDIS_URL, ServerProcess
from api_testing import make_settings, serve_app

HELD_REPLICA = Path(__file__).resolve().parent / "held_replica.py"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"test:jobs:{uuid.uuid4().hex}:"
    yield name
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        stale = list(client.scan_iter(match=name + "*", count=1000))
        if stale:
            client.delete(*stale)


def _post_csv(url: str, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "text/csv"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _shared_env(prefix: str) -> dict[str, str]:
    return {
        "ANOMALY_REDIS_URL": SHARED_REDIS_URL,
        "ANOMALY_TRAINING_JOB_PREFIX": f"{prefix}j:",
        "ANOMALY_CACHE_PREFIX": f"{prefix}c:",
        "ANOMALY_STREAM_PREFIX": f"{prefix}s:",
        "ANOMALY_REVISION_PREFIX": f"{prefix}r:",
        "ANOMALY_TRAINING_JOB_LEASE_S": "1.0",
    }


def _replica_b_settings(artifacts: Path, prefix: str) -> Settings:
    return make_settings(
        artifacts,
        redis_url=SHARED_REDIS_URL,
        redis_timeout_s=2.0,
        training_job_prefix=f"{prefix}j:",
        cache_prefix=f"{prefix}c:",
        stream_prefix=f"{prefix}s:",
        revision_prefix=f"{prefix}r:",
        training_job_lease_s=1.0,
    )


@contextlib.contextmanager
def held_replica(tmp_path: Path, prefix: str) -> Iterator[tuple[ServerProcess, Path, Path]]:
    """Replica A (a real server whose workers hold), its artifact and gate directories."""
    artifacts, gate = tmp_path / "artifacts", tmp_path / "gate"
    artifacts.mkdir()
    gate.mkdir()
    env = _shared_env(prefix) | {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts),
        "JOBS_GATE_DIR": str(gate),
    }
    replica = ServerProcess(tmp_path, env, program=[sys.executable, str(HELD_REPLICA)])
    try:
        replica.wait_ready(path="/health/live")
        yield replica, artifacts, gate
    finally:
        replica.kill()
        for held in gate.glob("*.held"):  # a worker still holding: end it
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(held.read_text()), signal.SIGKILL)


async def _held_job(replica: ServerProcess, gate: Path) -> tuple[str, int]:
    """Submit a job to ``replica`` and wait until its worker holds: (job id, worker pid)."""
    body = generate_sensor_data(300, seed=1).to_csv(index=False).encode()
    job_id = str(_post_csv(f"{replica.url}/models/m/versions", body)["job_id"])
    held = gate / f"{job_id}.held"
    for _ in range(3000):
        if held.exists() and held.read_text():
            return job_id, int(held.read_text())
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never held")


async def test_a_job_of_a_replica_that_died_is_failed_by_the_other(
    tmp_path: Path, prefix: str
) -> None:
    with held_replica(tmp_path, prefix) as (replica_a, artifacts, gate):
        job_id, worker_pid = await _held_job(replica_a, gate)
        staging = model_dir(artifacts, "m") / ".staging" / job_id
        assert any(staging.iterdir()), "the held job has trained into its staging directory"
        async with serve_app(_replica_b_settings(artifacts, prefix)) as replica_b:
            seen = (await replica_b.get(f"/jobs/{job_id}")).json()
            assert seen["status"] == "running", seen  # A's job, read from the shared table
            replica_a.process.kill()  # the replica dies with its worker (one pod)
            replica_a.process.wait(10)
            os.kill(worker_pid, signal.SIGKILL)
            for _ in range(600):
                job = (await replica_b.get(f"/jobs/{job_id}")).json()
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.05)
        assert job["status"] == "failed", job
        assert "stopped: no heartbeat" in job["error"]
        assert not staging.exists()
        assert not [p for p in model_dir(artifacts, "m").iterdir() if not p.name.startswith(".")]


async def test_a_job_is_cancelled_through_the_other_replica(tmp_path: Path, prefix: str) -> None:
    with held_replica(tmp_path, prefix) as (replica_a, artifacts, gate):
        job_id, _ = await _held_job(replica_a, gate)
        async with serve_app(_replica_b_settings(artifacts, prefix)) as replica_b:
            response = await replica_b.delete(f"/jobs/{job_id}")
            assert response.status_code == 202, response.text
            for _ in range(600):  # A stops its worker at its next renewal
                job = (await replica_b.get(f"/jobs/{job_id}")).json()
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.05)
        assert job["status"] == "cancelled", job
        assert replica_a.process.poll() is None  # A lives on
        assert not [p for p in model_dir(artifacts, "m").iterdir() if not p.name.startswith(".")]
