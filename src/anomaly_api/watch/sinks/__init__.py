"""Where a job's results go: the watcher's ``/metrics``, MQTT topics, a webhook."""

from __future__ import annotations

from typing import Protocol

from anomaly_api.watch.scoring import ScoredReadings

__all__ = ["Sink"]


class Sink(Protocol):
    """Takes every scored batch of a job (``live`` False during a backfill: events only)."""

    async def write(self, scored: ScoredReadings, *, live: bool) -> None:
        """Hand the batch on; must not raise for the sink's own failures (count them)."""
        ...

    async def close(self) -> None:
        """Flush and release connections."""
        ...
