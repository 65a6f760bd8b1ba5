"""Collectors' values in prometheus_client's multiprocess files, so any worker serves them.

prometheus_client's multiprocess mode combines the metrics each worker writes to
``PROMETHEUS_MULTIPROC_DIR``, but a custom collector (the cache's counters, the drift
statistics) is only asked by the worker being scraped. ``CollectorMirror`` copies each
collector's families into ordinary metrics of the same name, which do reach the files:
counters by their increase since the last copy (summed over the workers, a stopped
worker's count kept), gauges as set (one line per live worker, a ``pid`` label). A worker
copies its own just before it answers a scrape and every ``period`` seconds otherwise,
so another worker's collector values are at most that old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["MIRROR_PERIOD_S", "MULTIPROC_ENV", "CollectorMirror"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client's multiprocess mode keeps every worker's metric files."""

MIRROR_PERIOD_S = 5.0
"""How old another worker's collector values may be in a scrape (a third of the usual
15 s scrape interval; each copy computes the drift statistics once)."""

_log = logging.getLogger(__name__)

LabelKey = tuple[str, tuple[tuple[str, str], ...]]


def _dead_workers() -> set[int]:
    """Pids with per-worker gauge files whose process is gone."""
    directory = Path(os.environ[MULTIPROC_ENV])
    pids = {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("gauge_live*_*.db")}
    return {pid for pid in pids if not _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


class CollectorMirror:
    """Copies collectors' counter and gauge families into multiprocess metric files."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._copied: dict[LabelKey, float] = {}  # counter values already added
        self._task: asyncio.Task[None] | None = None

    def add(self, collector: Collector) -> None:
        """Copy ``collector`` from now on."""
        self._collectors.append(collector)

    def sync(self) -> None:
        """Copy every collector's current values (a failing one is logged, not raised)."""
        for collector in self._collectors:
            try:
                families = list(collector.collect())
            except Exception:
                _log.exception("collecting %s for the other workers failed", collector)
                continue
            for family in families:
                if family.type == "counter":
                    self._copy_counter(family.name, family.documentation, family.samples)
                elif family.type == "gauge":
                    self._copy_gauge(family.name, family.documentation, family.samples)

    def _copy_counter(self, name: str, doc: str, samples: Iterable[Sample]) -> None:
        for sample in samples:
            if sample.name != f"{name}_total":
                continue  # ``_created`` samples
            labels: dict[str, str] = sample.labels
            counter = self._counters.get(name)
            if counter is None:
                counter = Counter(name, doc, sorted(labels), registry=None)
                self._counters[name] = counter
            key = (name, tuple(sorted(labels.items())))
            value = float(sample.value)
            before = self._copied.get(key, 0.0)
            increase = value - before if value >= before else value  # a reset collector
            self._copied[key] = value
            if increase > 0:
                child = counter.labels(**labels) if labels else counter
                child.inc(increase)

    def _copy_gauge(self, name: str, doc: str, samples: Iterable[Sample]) -> None:
        for sample in samples:
            labels: dict[str, str] = sample.labels
            gauge = self._gauges.get(name)
            if gauge is None:
                gauge = Gauge(name, doc, sorted(labels), registry=None, multiprocess_mode="liveall")
                self._gauges[name] = gauge
            (gauge.labels(**labels) if labels else gauge).set(sample.value)

    def start(self, period_s: float = MIRROR_PERIOD_S) -> None:
        """Copy every ``period_s`` seconds in a task of the running loop."""

        async def copy_forever() -> None:
            while True:
                await asyncio.sleep(period_s)
                self.sync()

        self._task = asyncio.get_running_loop().create_task(copy_forever())

    async def stop(self) -> None:
        """Copy a last time and drop this worker's per-worker gauges (it is leaving)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sync()
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        """Every worker's metrics combined, in Prometheus text format (this one's copied
        first, so they are as fresh as in one process; a worker that died without its
        shutdown, killed, has its per-worker gauges dropped here)."""
        self.sync()
        for pid in _dead_workers():
            mark_process_dead(pid)  # type: ignore[no-untyped-call]
        combined = CollectorRegistry()
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined)
