"""In-process LRU cache with a TTL: the default, so the service runs with nothing else installed.

Two ``OrderedDict``s, so a batch's lookups and stores run in C: the values in recency order
(least recently used first) and the expiry times in write order (every entry lives the same
``ttl_s``, so the soonest first). Not thread-safe, and needs not be: every call runs on the
event loop thread and none awaits in the middle of an update. Why not ``cachetools``: the
Performance page (``docs/performance.md``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from anomaly_api.service.cache.base import BreakerState


class InMemoryPredictionCache:
    """LRU of at most ``max_entries`` values, each living ``ttl_s`` seconds.

    A read refreshes recency (LRU) but not the expiry time: an entry is never served
    ``ttl_s`` or more after it was written. Writing a key again renews both.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._timer = timer
        self._values: OrderedDict[str, bytes] = OrderedDict()
        """Least recently used first."""
        self._expiry: OrderedDict[str, float] = OrderedDict()
        """When each entry expires, the soonest (the oldest write) first."""
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
        self._expire(self._timer())
        return len(self._values)

    def _expire(self, now: float) -> None:
        """Drop every entry written ``ttl_s`` or more before ``now``."""
        expiry, values = self._expiry, self._values
        while expiry:
            key = next(iter(expiry))
            if expiry[key] > now:
                return
            del expiry[key], values[key]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order, ``None`` for missing or expired entries."""
        self._expire(self._timer())
        values = self._values
        found = list(map(values.get, keys))
        touch = values.move_to_end
        hits = 0
        for key, value in zip(keys, found, strict=True):
            if value is not None:
                touch(key)
                hits += 1
        self.hits += hits
        self.misses += len(found) - hits
        return found

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items``; the least recently used entries make room when full."""
        now = self._timer()
        self._expire(now)
        values, expiry = self._values, self._expiry
        rewritten = [key for key in items if key in values]
        values.update(items)
        expiry.update(dict.fromkeys(items, now + self._ttl_s))
        for key in rewritten:  # ``update`` keeps a key where it was
            values.move_to_end(key)
            expiry.move_to_end(key)
        for _ in range(len(values) - self._max_entries):
            key, _ = values.popitem(last=False)
            del expiry[key]

    async def check(self) -> bool:
        """Always true."""
        return True

    async def close(self) -> None:
        """Drop every entry."""
        self._values.clear()
        self._expiry.clear()
