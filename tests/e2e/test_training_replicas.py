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


async def test_a_job_of_a_replica_that_died_is_failed_by_the_other(
    tmp_path: Path, prefix: str
) -> None:
    artifacts, gate = tmp_path / "artifacts", tmp_path / "gate"
    artifacts.mkdir()
    gate.mkdir()
    shared = {
        "ANOMALY_REDIS_URL": SHARED_REDIS_URL,
        "ANOMALY_TRAINING_JOB_PREFIX": f"{prefix}j:",
        "ANOMALY_CACHE_PREFIX": f"{prefix}c:",
        "ANOMALY_STREAM_PREFIX": f"{prefix}s:",
        "ANOMALY_REVISION_PREFIX": f"{prefix}r:",
        "ANOMALY_TRAINING_JOB_LEASE_S": "1.0",
    }
    env = shared | {"ANOMALY_ARTIFACTS_DIR": str(artifacts), "JOBS_GATE_DIR": str(gate)}
    replica_a = ServerProcess(tmp_path, env, program=[sys.executable, str(HELD_REPLICA)])
    worker_pid = None
    try:
        replica_a.wait_ready(path="/health/live")
        body = generate_sensor_data(300, seed=1).to_csv(index=False).encode()
        job_id = str(_post_csv(f"{replica_a.url}/models/m/versions", body)["job_id"])
        held = gate / f"{job_id}.held"
        for _ in range(3000):
            if held.exists() and held.read_text():
                break
            await asyncio.sleep(0.05)
        worker_pid = int(held.read_text())
        staging = model_dir(artifacts, "m") / ".staging" / job_id
        assert any(staging.iterdir()), "the held job has trained into its staging directory"
        settings = make_settings(
            artifacts,
            redis_url=SHARED_REDIS_URL,
            redis_timeout_s=2.0,
            training_job_prefix=f"{prefix}j:",
            cache_prefix=f"{prefix}c:",
            stream_prefix=f"{prefix}s:",
            revision_prefix=f"{prefix}r:",
            training_job_lease_s=1.0,
        )
        async with serve_app(settings) as replica_b:
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
    finally:
        replica_a.kill()
        if worker_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker_pid, signal.SIGKILL)
