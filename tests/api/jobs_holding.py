"""A training worker that holds its job after training, before it reports (tests only).

It runs the real ``run_job`` in the real worker process; only its ``done`` message waits
until the test releases it. While held, the new version is complete in the job's staging
directory and not yet published: the moment a kill or a cancel must leave nothing behind.
The gate directory comes from ``JOBS_GATE_DIR``, which spawned children inherit.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from anomaly_api.service.jobs.worker import JobSpec, run_job

GATE_ENV = "JOBS_GATE_DIR"


def held(gate: Path, job_id: str) -> Path:
    """The file the worker writes (its process id) once it holds."""
    return gate / f"{job_id}.held"


def release(gate: Path, job_id: str) -> None:
    """Let the held worker report."""
    (gate / f"{job_id}.release").touch()


class _HeldConnection:
    def __init__(self, conn: Connection, gate: Path, job_id: str) -> None:
        self._conn, self._gate, self._job_id = conn, gate, job_id

    def send(self, message: tuple[str, Any]) -> None:
        if message[0] == "done":
            held(self._gate, self._job_id).write_text(str(os.getpid()))
            while not (self._gate / f"{self._job_id}.release").exists():
                time.sleep(0.01)
        self._conn.send(message)


def held_worker(spec: JobSpec, conn: Connection) -> None:
    """``run_job``, held before it reports its result."""
    gate = Path(os.environ[GATE_ENV])
    run_job(spec, _HeldConnection(conn, gate, spec.job_id))  # type: ignore[arg-type]


def wait_for(path: Path, timeout_s: float = 120.0) -> None:
    """Block until ``path`` exists (the worker holds)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
