"""The bounded queue of training jobs of this replica.

At most ``workers`` jobs train at once, each in its own worker process started with the
``spawn`` method (a fresh interpreter: nothing of the event loop, its threads or its
sockets is inherited); past ``workers + max_queued`` jobs a submission is refused
(``JobQueueFullError``, 429). A process per job rather than a pool: a job is cancelled
or lost by ending exactly its process, which a pool cannot do without breaking itself.

The worker trains into ``<model dir>/.staging/<job id>/``; when it exits cleanly this
runner renames the version into the model directory (one atomic rename on the same
filesystem) and registers it (``registry.register_version``). A cancelled, killed or
failing worker leaves only the staging directory, which is removed.

Every job of this replica is heartbeaten in the job table every ``lease_s / 3`` seconds;
whoever reads a queued or running job whose heartbeat is older than ``lease_s`` (its
replica died or was cut off) marks it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import anyio.to_thread

from anomaly_api.config import Settings
from anomaly_api.service.errors import ServiceError
from anomaly_api.service.jobs.records import FINISHED, JobRecord
from anomaly_api.service.jobs.store import JobStore, MemoryJobStore, RedisJobStore
from anomaly_api.service.jobs.worker import JobSpec, receive, run_job
from anomaly_api.training.publishing import discard, publish, staging_dir
from anomaly_api.training.request import TrainingRequest

__all__ = [
    "JobCounts",
    "JobNotFoundError",
    "JobQueueFullError",
    "JobRunner",
    "TrainingUnavailableError",
    "can_train",
    "runner_from_settings",
]

_log = logging.getLogger(__name__)
Worker = Callable[[JobSpec, Connection], None]


class JobQueueFullError(ServiceError):
    """This replica runs and queues as many training jobs as it takes; retry later."""


class JobNotFoundError(ServiceError):
    """No such job (never submitted, or forgotten since)."""


class TrainingUnavailableError(ServiceError):
    """This installation serves models but cannot train them (no pandas: the container
    image leaves the training data libraries out)."""


def can_train() -> bool:
    """Whether the libraries that read training data are installed."""
    return importlib.util.find_spec("pandas") is not None


@dataclass(frozen=True)
class JobCounts:
    """This replica's jobs for ``/metrics``: those that ended, by final status, since the
    service started, and those queued or running now (plain numbers: the runner knows
    nothing of Prometheus)."""

    ended: dict[str, int]
    running: int
    queued: int


@dataclass
class _LocalJob:
    """A job of this replica while it is queued or running."""

    record: JobRecord
    spec: JobSpec
    cleanup: Path | None
    """A directory to remove when the job ends (the uploaded data)."""
    process: BaseProcess | None = None
    cancelled: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    writing: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    """Held while the record is written, so a late write never overtakes a newer one."""


class JobRunner:
    """Queues, runs, follows and publishes the training jobs of this replica."""

    def __init__(
        self,
        store: JobStore,
        artifacts_dir: Path,
        *,
        workers: int,
        max_queued: int,
        lease_s: float,
        retry_after_s: int,
        worker: Worker = run_job,
        auto_promote: bool = False,
    ) -> None:
        self.store = store
        self.artifacts_dir = artifacts_dir
        self.auto_promote = auto_promote
        """Whether a published version replaces production when not worse (``registry``)."""
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._slots = asyncio.Semaphore(workers)
        self._capacity = workers + max_queued
        self._lease_s = lease_s
        self._retry_after_s = retry_after_s
        self.worker = worker
        """The function each worker process runs (``run_job``)."""
        self._context = multiprocessing.get_context("spawn")
        self._jobs: dict[str, _LocalJob] = {}
        self._ended = dict.fromkeys(sorted(FINISHED), 0)
        self._heartbeat: asyncio.Task[None] | None = None

    def check_room(self) -> None:
        """Refuse (``JobQueueFullError``) when no job can be queued now, and
        (``TrainingUnavailableError``) when this installation cannot train."""
        if not can_train():
            raise TrainingUnavailableError(
                "this installation serves models but cannot train them: pandas is not "
                "installed (the container image leaves it out); train where anomaly-api is "
                "installed with its dependencies (`anomaly-api train --model NAME` on a shared "
                "artifact directory, or a service started from `pip install anomaly-api`)"
            )
        if len(self._jobs) >= self._capacity:
            raise JobQueueFullError(
                f"{len(self._jobs)} training jobs are running or queued on this replica, "
                "as many as it takes; retry later",
                retry_after_s=self._retry_after_s,
            )

    def counts(self) -> JobCounts:
        """How many jobs ended here (by status), and how many run or wait now."""
        running = sum(job.process is not None for job in self._jobs.values())
        return JobCounts(dict(self._ended), running, len(self._jobs) - running)

    def _count_end(self, job: _LocalJob) -> None:
        """Count a job that left this replica's queue (once: whoever removed it)."""
        if job.record.finished:
            self._ended[job.record.status] += 1

    async def submit(
        self, model: str, request: TrainingRequest, data: Path | None, cleanup: Path | None
    ) -> JobRecord:
        """Queue a job training a version of ``model``; ``cleanup`` is removed when it ends."""
        self.check_room()
        job_id = uuid.uuid4().hex
        staging = staging_dir(self.artifacts_dir, model, job_id)
        record = JobRecord(job_id=job_id, model=model, owner=self.owner)
        spec = JobSpec(job_id=job_id, request=request, data=data, staging_dir=staging)
        job = _LocalJob(record=record, spec=spec, cleanup=cleanup)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="training-job-heartbeat")
        await self.store.put(record)
        self._jobs[job_id] = job
        job.task = asyncio.create_task(self._run(job), name=f"training-job-{job_id}")
        return record

    async def status(self, job_id: str) -> JobRecord:
        """The job's record; a queued or running job of a replica that stopped
        heartbeating is marked failed first."""
        record = await self.store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"no training job {job_id!r}")
        stale = time.time() - record.heartbeat_at
        if not record.finished and job_id not in self._jobs and stale > self._lease_s:
            record = record.changed(
                status="failed",
                error=f"the replica running it ({record.owner}) stopped: no heartbeat for "
                f"{stale:.0f} s (lease {self._lease_s:g} s); no version was published",
            )
            await self.store.put(record)
            staging = staging_dir(self.artifacts_dir, record.model, job_id)
            await anyio.to_thread.run_sync(discard, staging)
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (a finished one stays as it is)."""
        record = await self.status(job_id)
        if record.finished:
            return record
        job = self._jobs.get(job_id)
        if job is None:  # another replica's: it stops the job at its next heartbeat
            await self.store.request_cancel(job_id)
            return record
        job.cancelled = True
        if job.process is None:
            await self._drop_queued(job, status="cancelled")
        else:
            self._stop(job)
        return job.record

    async def close(self) -> None:
        """Stop every job of this replica (marked failed: the service stopped)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        stopped = {"status": "failed", "error": "the service stopped"}
        for job in list(self._jobs.values()):
            if job.process is None:
                await self._drop_queued(job, **stopped)
            else:
                job.record = job.record.changed(**stopped)
                self._stop(job)
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()

    def running_process(self, job_id: str) -> BaseProcess | None:
        """The worker process of a running job of this replica (for operators and tests)."""
        job = self._jobs.get(job_id)
        return None if job is None else job.process

    @staticmethod
    def _stop(job: _LocalJob) -> None:
        if job.process is not None and job.process.is_alive():
            job.process.terminate()

    async def _drop_queued(self, job: _LocalJob, **values: Any) -> None:
        """End a job that has no worker yet: its task may not even have started, so
        everything its ``finally`` would do is done here."""
        ours = self._jobs.pop(job.record.job_id, None) is not None
        if job.task is not None:
            job.task.cancel()
        await self._update(job, **values)
        if ours:
            self._count_end(job)
        await anyio.to_thread.run_sync(self._clean, job)

    async def _update(self, job: _LocalJob, **values: Any) -> None:
        job.record = job.record.changed(heartbeat_at=time.time(), **values)
        async with job.writing:
            await self.store.put(job.record)  # the newest record, whoever changed it last

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            for job in list(self._jobs.values()):
                try:
                    if await self.store.cancel_requested(job.record.job_id):
                        await self.cancel(job.record.job_id)
                    await self._update(job)
                except Exception:  # a store outage must not end the heartbeat
                    _log.warning("training job heartbeat failed", exc_info=True)

    async def _run(self, job: _LocalJob) -> None:
        try:
            async with self._slots:
                if job.cancelled or job.record.finished:
                    return
                await self._update(job, status="running", progress="starting a worker process")
                outcome = await self._train(job)
            if job.cancelled:
                await self._update(job, status="cancelled", progress=None)
            elif job.record.status == "failed":  # the service stopped
                await self._update(job)
            elif isinstance(outcome, dict):
                await self._publish(job, outcome)
            else:
                await self._update(job, status="failed", error=outcome)
        except asyncio.CancelledError:
            pass  # dropped while queued (``_drop_queued`` wrote its record)
        except Exception as exc:
            _log.exception("training job %s failed", job.record.job_id)
            with contextlib.suppress(Exception):
                await self._update(job, status="failed", error=f"internal error: {exc}")
        finally:
            if self._jobs.pop(job.record.job_id, None) is not None:
                self._count_end(job)
            await anyio.to_thread.run_sync(self._clean, job)

    async def _train(self, job: _LocalJob) -> dict[str, Any] | str:
        """Run the worker process to its end: its ``done`` payload, or why it failed."""
        parent, child = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=self.worker, args=(job.spec, child), name=f"train-{job.record.job_id}"
        )
        job.process = process
        await anyio.to_thread.run_sync(process.start)
        child.close()  # the parent's copy: EOF once the worker exits
        outcome: dict[str, Any] | str | None = None
        try:
            while True:
                message = await anyio.to_thread.run_sync(receive, parent)
                if message is None:
                    break
                kind, payload = message
                if kind == "progress":
                    await self._update(job, progress=str(payload))
                elif kind == "done":
                    outcome = cast(dict[str, Any], payload)
                else:
                    outcome = str(payload)
        finally:
            parent.close()
            await anyio.to_thread.run_sync(process.join)
        if process.exitcode != 0 and not isinstance(outcome, str):
            code = process.exitcode
            how = f"was killed by signal {-code}" if code and code < 0 else f"exited with {code}"
            return f"the worker process {how} before it finished; no version was published"
        return outcome if outcome is not None else "the worker process sent no result"

    async def _publish(self, job: _LocalJob, outcome: dict[str, Any]) -> None:
        version = str(outcome["version"])
        try:
            await anyio.to_thread.run_sync(
                partial(publish, auto_promote=self.auto_promote),
                self.artifacts_dir,
                job.record.model,
                job.spec.staging_dir,
                version,
            )
        except OSError as exc:
            await self._update(
                job, status="failed", error=f"cannot publish version {version!r}: {exc}"
            )
            return
        await self._update(
            job, status="succeeded", progress=None, version=version, metrics=outcome["metrics"]
        )

    @staticmethod
    def _clean(job: _LocalJob) -> None:
        if job.process is not None and job.process.is_alive():  # cancelled as it started
            job.process.kill()
            job.process.join()
        discard(job.spec.staging_dir)
        if job.cleanup is not None:
            discard(job.cleanup)


def runner_from_settings(settings: Settings) -> JobRunner:
    """The job runner of a replica: the job table in Redis when configured, else in memory."""
    store: JobStore = MemoryJobStore()
    if settings.redis_url:
        from anomaly_api.service.redis_support import client_from_settings

        client = client_from_settings(settings, socket_timeout=settings.redis_connect_timeout_s)
        store = RedisJobStore(
            client, prefix=settings.training_job_prefix, ttl_s=settings.training_job_ttl_s
        )
    return JobRunner(
        store,
        settings.artifacts_dir,
        workers=settings.training_workers,
        max_queued=settings.training_max_queued,
        lease_s=settings.training_job_lease_s,
        retry_after_s=settings.training_retry_after_s,
        auto_promote=settings.auto_promote,
    )
