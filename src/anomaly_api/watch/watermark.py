"""Each job's watermark: the last timestamp it scored, per stream, kept across restarts.

A Prometheus job reads from its watermark to now, so a restart neither skips nor scores
twice. Kept in a small JSON file per job, replaced atomically (a crash leaves the old or
the new file, never half of one), or in a Redis hash when the watcher uses Redis.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["FileWatermarks", "RedisWatermarks", "Watermarks"]


class Watermarks(Protocol):
    """Where a job's watermarks live."""

    async def load(self) -> dict[str, float]:
        """Every stream's last scored timestamp (epoch s); empty on the first start."""
        ...

    async def save(self, marks: dict[str, float]) -> None:
        """Replace the stored marks with ``marks``."""
        ...


class FileWatermarks:
    """``<state_dir>/<job>.json``: ``{"streams": {stream id: last timestamp}}``."""

    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / f"{job}.json"

    async def load(self) -> dict[str, float]:
        return _read_marks(self.path)

    async def save(self, marks: dict[str, float]) -> None:
        # A few hundred bytes per stream, written in place of a thread hop: cheaper.
        _write_marks(self.path, marks)


def _read_marks(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): float(v) for k, v in data["streams"].items()}


def _write_marks(path: Path, marks: dict[str, float]) -> None:
    """Write a temporary file beside ``path``, then rename it over ``path`` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"streams": marks}, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RedisWatermarks:
    """A Redis hash ``<prefix>watch:<job>``: stream id -> last timestamp."""

    def __init__(self, redis: Redis, prefix: str, job: str) -> None:
        self.redis = redis
        self.key = f"{prefix}watch:{job}"

    async def load(self) -> dict[str, float]:
        raw = await self.redis.hgetall(self.key)
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    async def save(self, marks: dict[str, float]) -> None:
        if marks:
            await self.redis.hset(self.key, mapping={k: repr(v) for k, v in marks.items()})
