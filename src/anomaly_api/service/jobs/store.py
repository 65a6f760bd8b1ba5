"""The job table: in process memory, or in Redis where every replica reads and writes it.

A cancellation is a key of its own (never a field of the record), so the replica running
the job, which rewrites the record as it goes, cannot overwrite it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from anomaly_api.service.errors import ServiceError
from anomaly_api.service.jobs.records import JobRecord

__all__ = ["JobStore", "JobStoreUnavailableError", "MemoryJobStore", "RedisJobStore"]

T = TypeVar("T")


class JobStoreUnavailableError(ServiceError):
    """The shared job table (Redis) does not answer; retry later (503)."""


async def _guarded(call: Awaitable[T]) -> T:
    try:
        return await call
    except (RedisError, OSError) as exc:
        raise JobStoreUnavailableError(
            f"the job table in Redis does not answer ({type(exc).__name__}); retry later",
            retry_after_s=5,
        ) from exc


class JobStore(Protocol):
    """Where job records live."""

    async def put(self, record: JobRecord) -> None:
        """Write ``record`` (replacing the job's previous one)."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None."""

    async def request_cancel(self, job_id: str) -> None:
        """Ask the replica running the job to stop it."""

    async def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to stop the job."""

    async def close(self) -> None:
        """Release connections."""


class MemoryJobStore:
    """This process's jobs; the oldest finished ones are forgotten past ``max_records``."""

    def __init__(self, max_records: int = 1000) -> None:
        self._records: OrderedDict[str, JobRecord] = OrderedDict()
        self._cancelled: set[str] = set()
        self._max_records = max_records

    async def put(self, record: JobRecord) -> None:
        self._records[record.job_id] = record
        self._records.move_to_end(record.job_id)
        while len(self._records) > self._max_records:
            oldest = next((k for k, r in self._records.items() if r.finished), None)
            if oldest is None:
                break
            del self._records[oldest]
            self._cancelled.discard(oldest)

    async def get(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id)

    async def request_cancel(self, job_id: str) -> None:
        self._cancelled.add(job_id)

    async def cancel_requested(self, job_id: str) -> bool:
        return job_id in self._cancelled

    async def close(self) -> None:
        """Nothing to release."""


class RedisJobStore:
    """Records as JSON under ``<prefix><job_id>``, expiring ``ttl_s`` after their last write."""

    def __init__(self, client: Redis, *, prefix: str, ttl_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)

    async def put(self, record: JobRecord) -> None:
        key = self._prefix + record.job_id
        await _guarded(self._client.set(key, record.model_dump_json(), px=self._ttl_ms))

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await _guarded(self._client.get(self._prefix + job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    async def request_cancel(self, job_id: str) -> None:
        await _guarded(self._client.set(self._prefix + job_id + ":cancel", b"1", px=self._ttl_ms))

    async def cancel_requested(self, job_id: str) -> bool:
        return bool(await _guarded(self._client.exists(self._prefix + job_id + ":cancel")))

    async def close(self) -> None:
        await self._client.aclose()
