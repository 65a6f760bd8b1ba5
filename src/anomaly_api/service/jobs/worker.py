"""The child process of one job: train into the job's staging directory, report back.

It writes nothing outside the staging directory: the parent publishes the version after
the child exited cleanly, so a child killed at any point leaves no version behind.
Messages to the parent are ``(kind, payload)`` tuples: ``progress`` lines, then one
``done`` (version and metrics) or ``error`` (one line for the user).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from anomaly_api.training.request import TrainingRequest

__all__ = ["JobSpec", "receive", "run_job"]


@dataclass(frozen=True)
class JobSpec:
    """What a worker process needs (pickled into it)."""

    job_id: str
    request: TrainingRequest
    data: Path | None
    """The training file; None for the synthetic sensor data."""
    staging_dir: Path


def run_job(spec: JobSpec, conn: Connection) -> None:
    """Train as ``spec`` says and send the outcome through ``conn``."""
    from anomaly_api.artifacts import ArtifactError
    from anomaly_api.data.errors import DataError
    from anomaly_api.training.request import RequestError, run_training

    def progress(message: str) -> None:
        conn.send(("progress", message))

    try:
        result = run_training(
            spec.request, spec.data, spec.staging_dir, progress=progress, make_latest=False
        )
    except (DataError, ArtifactError, RequestError) as exc:
        conn.send(("error", str(exc)))
        return
    except OSError as exc:  # e.g. a read-only artifact directory
        conn.send(("error", f"cannot write the version: {exc}"))
        return
    conn.send(("done", {"version": result.version, "metrics": result.trained.metrics}))


def receive(conn: Connection) -> tuple[str, object] | None:
    """The worker's next message (in the parent); None once it closed its end (it exited)."""
    try:
        message: tuple[str, object] = conn.recv()
    except (EOFError, OSError):
        return None
    return message
