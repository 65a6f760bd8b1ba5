"""Each job's watermark: the last timestamp it scored, per stream, kept across restarts.

A Prometheus job reads from its watermark to now, so a restart neither skips nor scores
twice. A stream's mark is noted right after its readings are scored (``note``: one cheap
write, whatever the number of streams), and every mark is saved at the end of a run
(``save``). On file: ``<job>.json`` replaced atomically (a crash leaves the old or the new
file, never half of one) plus a journal ``<job>.journal`` of the marks noted since, one
JSON line each, replayed over it on load. In Redis: one hash per job.
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

    async def note(self, key: str, mark: float) -> None:
        """Keep one stream's mark (cheap: called after each stream's readings)."""
        ...

    async def save(self, marks: dict[str, float]) -> None:
        """Keep every mark of ``marks`` (at the end of a run)."""
        ...


class FileWatermarks:
    """``<state_dir>/<job>.json`` (``{"streams": {stream id: last timestamp}}``) and the
    journal of the marks noted since it was written."""

    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / f"{job}.json"
        self.journal = state_dir / f"{job}.journal"

    async def load(self) -> dict[str, float]:
        marks = _read_marks(self.path)
        marks.update(_read_journal(self.journal))
        return marks

    async def note(self, key: str, mark: float) -> None:
        # One short line appended and flushed: a killed process loses nothing written.
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps([key, mark]) + "\n")

    async def save(self, marks: dict[str, float]) -> None:
        _write_marks(self.path, marks)
        self.journal.unlink(missing_ok=True)  # its marks are in the file now


def _read_marks(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): float(v) for k, v in data["streams"].items()}


def _read_journal(path: Path) -> dict[str, float]:
    """The journal's marks in order; a torn last line (a crash mid-write) is skipped."""
    marks: dict[str, float] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return marks
    for line in lines:
        try:
            key, mark = json.loads(line)
        except ValueError:
            continue
        marks[str(key)] = float(mark)
    return marks


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

    async def note(self, key: str, mark: float) -> None:
        await self.redis.hset(self.key, key, repr(mark))

    async def save(self, marks: dict[str, float]) -> None:
        if marks:
            await self.redis.hset(self.key, mapping={k: repr(v) for k, v in marks.items()})
