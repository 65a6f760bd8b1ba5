"""Fit schedules: a job retrains its model on the source's recent data, out of process.

Every ``fit.every`` (on the wall-clock grid, so a restart does not add fits) the job's
readings of the last ``fit.window`` are written to a CSV (``ts``, ``stream`` and one
column per channel) and trained by ``run_training`` -- the code behind ``anomaly-api
train`` -- in a spawned worker process (the training API's own worker), so scoring goes
on meanwhile. The version is
trained into a staging directory and published (``training.publishing``): it becomes
``candidate``, and ``production`` under the registry's rule when ``auto_promote``. The
job then drops its loaded predictor, so its next readings are scored by whatever the
alias names now; the stream store restarts streams on a differently fitted model, as
it does in the service.

An MQTT job keeps the readings it received in ``FitBuffer``: in memory, at most
``fit.max_readings`` (the oldest dropped first), lost on restart -- the first fit after
a restart sees only what arrived since.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import multiprocessing
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Literal, cast

import anyio.to_thread

from anomaly_api.service.jobs.worker import JobSpec, receive, run_job
from anomaly_api.training.publishing import discard, publish, staging_dir
from anomaly_api.watch.config import FitConfig
from anomaly_api.watch.scoring import Readings

__all__ = ["FitBuffer", "FitError", "FitOutcome", "Fitter", "train_in_process"]

_log = logging.getLogger(__name__)

FitOutcome = Literal["promoted", "candidate", "failed", "skipped"]
"""``skipped``: the previous fit of the job was still training, or there was no data."""

DATA_FILE = "fit.csv"
_SPAWN = multiprocessing.get_context("spawn")
"""A fresh interpreter: nothing of the event loop, its threads or its sockets inherited."""


class FitError(Exception):
    """The worker refused the data or did not finish (the message says which)."""


async def train_in_process(spec: JobSpec) -> str:
    """Run the training API's worker (``run_job``) in a spawned process to its end; the
    version it trained. A process per fit, as the training API does, so a stopped
    watcher ends exactly its training (cancelling this terminates the process)."""
    parent, child = _SPAWN.Pipe(duplex=False)
    process = _SPAWN.Process(target=run_job, args=(spec, child), name=f"fit-{spec.job_id}")
    await anyio.to_thread.run_sync(process.start)
    child.close()  # the parent's copy: EOF once the worker exits
    outcome: tuple[str, object] | None = None
    try:
        # abandoned on cancel: the blocked read ends with EOF once the process is ended
        next_message = partial(anyio.to_thread.run_sync, receive, parent, abandon_on_cancel=True)
        while (message := await next_message()) is not None:
            if message[0] != "progress":
                outcome = message
    finally:
        parent.close()
        if process.is_alive():
            process.terminate()
        await anyio.to_thread.run_sync(process.join)
    if outcome is None:
        raise FitError(f"the worker process exited with {process.exitcode} before it finished")
    if outcome[0] != "done":
        raise FitError(str(outcome[1]))
    return str(cast(dict[str, object], outcome[1])["version"])


class FitBuffer:
    """The readings an MQTT job received, for its next fit (bounded, in memory)."""

    def __init__(self, max_readings: int) -> None:
        self._readings: deque[tuple[str, float, dict[str, float]]] = deque(maxlen=max_readings)

    def add(self, batch: Readings) -> None:
        """Keep ``batch``'s readings (the oldest of the buffer go beyond its bound)."""
        for stamp, row in zip(batch.timestamps, batch.rows, strict=True):
            self._readings.append((batch.stream_id, stamp, dict(row)))

    def since(self, start: float) -> list[Readings]:
        """The readings with timestamps from ``start`` on, per stream."""
        by_stream: dict[str, tuple[list[float], list[dict[str, float]]]] = {}
        for stream, stamp, row in self._readings:
            if stamp >= start:
                stamps, rows = by_stream.setdefault(stream, ([], []))
                stamps.append(stamp)
                rows.append(row)
        return [Readings(s, {}, stamps, rows) for s, (stamps, rows) in by_stream.items()]

    def __len__(self) -> int:
        return len(self._readings)


def write_training_data(path: Path, batches: Sequence[Readings]) -> tuple[str, ...]:
    """``batches`` as a CSV of ``ts``, ``stream`` and the channels every row holds (rows
    missing one are left out); the channels (none: nothing to train on)."""
    channels: set[str] | None = None
    for batch in batches:
        for row in batch.rows:
            channels = set(row) if channels is None else channels & set(row)
    names = sorted(channels or ())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["ts", "stream", *names])
        for batch in batches:
            for stamp, row in zip(batch.timestamps, batch.rows, strict=True):
                writer.writerow([stamp, batch.stream_id, *(row[n] for n in names)])
    return tuple(names) if any(batch.rows for batch in batches) else ()


class Fitter:
    """One job's fits, each trained in a worker process of its own."""

    def __init__(
        self, job: str, model: str, config: FitConfig, artifacts_dir: Path, slot: asyncio.Semaphore
    ) -> None:
        self.job = job
        self.slot = slot
        """Held while training (shared by the watcher's jobs: one training at a time)."""
        self.model = model
        self.config = config
        self.artifacts_dir = artifacts_dir
        self.running = False
        self.last_version: str | None = None

    async def fit(self, batches: Sequence[Readings]) -> FitOutcome:
        """Train and publish a version from ``batches``; what came of it (never raises)."""
        if self.running:
            return "skipped"
        self.running = True
        key = f"watch-{uuid.uuid4().hex}"
        staging = staging_dir(self.artifacts_dir, self.model, key)
        try:
            return await self._fit(batches, staging, key)
        except Exception as exc:  # a failed fit is counted and logged; scoring goes on
            _log.warning("job %s: the fit of model %s failed: %s", self.job, self.model, exc)
            return "failed"
        finally:
            self.running = False
            await anyio.to_thread.run_sync(discard, staging)

    async def _fit(self, batches: Sequence[Readings], staging: Path, key: str) -> FitOutcome:
        data = staging / DATA_FILE
        channels = await anyio.to_thread.run_sync(write_training_data, data, batches)
        if not channels:
            _log.warning("job %s: no readings in the fit window; nothing trained", self.job)
            return "skipped"
        request = replace(self.config.request(), features=channels)
        async with self.slot:
            version = await train_in_process(JobSpec(key, request, data, staging / "out"))
        decision = await anyio.to_thread.run_sync(
            partial(publish, auto_promote=self.config.auto_promote),
            self.artifacts_dir,
            self.model,
            staging / "out",
            version,
        )
        self.last_version = version
        _log.info(
            "job %s: fitted %s/%s (%s)",
            self.job,
            self.model,
            version,
            "promoted" if decision["promoted"] else decision["why"],
        )
        return "promoted" if decision["promoted"] else "candidate"
