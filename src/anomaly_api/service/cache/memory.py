"""In-process LRU cache with a TTL: the default, so the service runs with nothing else installed.

Backed by ``cachetools.TTLCache`` (a maintained LRU-with-expiry mapping) rather than
hand-written bookkeeping. It is not thread-safe, which is fine: every call runs on the
event loop thread and none awaits in the middle of an update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from cachetools import TTLCache

from anomaly_api.service.cache.base import BreakerState


class InMemoryPredictionCache:
    """LRU of at most ``max_entries`` values, each living ``ttl_s`` seconds.

    A read refreshes recency (LRU) but not the expiry time: an entry is never served
    more than ``ttl_s`` after it was written.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=timer)
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.skipped = 0

    @property
    def backend(self) -> str:
        """Always ``"memory"``."""
        return "memory"

    @property
    def breaker_state(self) -> BreakerState:
        """Always ``"closed"``; present so both backends export the same counters."""
        return "closed"

    def __len__(self) -> int:
        """Entries currently held (expired ones are dropped first)."""
        self._entries.expire()
        return len(self._entries)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order, ``None`` for missing or expired entries."""
        values = [self._entries.get(key) for key in keys]
        found = sum(value is not None for value in values)
        self.hits += found
        self.misses += len(values) - found
        return values

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items``; the least recently used entries make room when full."""
        for key, value in items.items():
            self._entries[key] = value

    async def check(self) -> bool:
        """Always true."""
        return True

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()
