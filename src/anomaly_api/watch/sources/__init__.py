"""Where a job's readings come from: Prometheus range queries, MQTT topics."""

from __future__ import annotations

import re

__all__ = ["SourceError", "stream_id_of"]

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:-]")


class SourceError(Exception):
    """The source did not answer usefully this time (the job retries on its next tick)."""


def stream_id_of(job: str, parts: list[str]) -> str:
    """``job.part1.part2`` with every character a stream id cannot hold replaced by ``_``
    (``STREAM_ID_PATTERN``), cut to its 128 characters."""
    return _NOT_ALLOWED.sub("_", ".".join([job, *parts]))[:128]
