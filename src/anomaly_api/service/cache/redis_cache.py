"""Redis-backed prediction cache that fails open.

Every call has a short timeout and goes through a circuit breaker: while Redis is down or
slow, reads return misses and writes are dropped at the cost of one comparison, and the
breaker lets one trial call through per cooldown so caching resumes by itself.

redis-py's defaults suit a primary store, not a cache: 5 s socket timeouts and ten
retries with exponential backoff. Here the socket timeouts come from the settings and
a call is retried at most once, immediately, and only on a connection error (a pooled
socket that a Redis restart closed); the breaker replaces retrying. Nothing connects
at construction; the service's start-up warm-up opens the connection once, within
``redis_connect_timeout_s`` (a dead Redis only opens the breaker).

Writes go as one EVALSHA of a tiny Lua script that SETs every key with its TTL, rather
than a pipeline of SET commands: the same single round trip, but redis-py packs one
command instead of one per key, which cut the client CPU of a 1,000-key write about
threefold (the event loop pays it). redis-py's script object reloads the script when a
restarted Redis has forgotten it. An error *reply* (e.g. OOM, no permission) counts as an
error but not as an outage: Redis answered, so the breaker stays closed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TypeVar

from redis.asyncio import Redis

from anomaly_api.config import Settings
from anomaly_api.service.cache.breaker import CircuitBreaker
from anomaly_api.service.redis_support import (
    GuardedRedisCalls,
    breaker_from_settings,
    client_from_settings,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")

# KEYS: cache keys; ARGV: one value per key, then the TTL in milliseconds.
_SET_MANY_LUA = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i], 'PX', ttl)
end
return #KEYS
"""


class RedisPredictionCache(GuardedRedisCalls):
    """Prediction cache in Redis: one MGET per read, one script call (``SET PX`` each) per write.

    Attributes
    ----------
    hits, misses : int
        Keys found / not found (keys of skipped or failed reads count as misses).
    errors : int
        Calls that failed (timeout, connection, server error), health probes included.
    skipped : int
        Calls the open breaker did not send.
    """

    _log = _log
    _label = "Redis cache"
    _outage_message = "Redis cache failing (%s: %s); bypassing it, next try in %.1f s"

    def __init__(
        self,
        client: Redis,
        *,
        ttl_s: float,
        call_timeout_s: float,
        breaker: CircuitBreaker,
        log_interval_s: float = 30.0,
        probe_timeout_s: float | None = None,
    ) -> None:
        super().__init__(
            client, call_timeout_s, breaker, log_interval_s, probe_timeout_s=probe_timeout_s
        )
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._set_many_script = client.register_script(_SET_MANY_LUA)
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisPredictionCache:
        """Client with the settings' timeouts and breaker; does not connect yet."""
        timeout = settings.redis_timeout_s
        client = client_from_settings(settings)
        breaker = breaker_from_settings(settings)
        # The budget covers one connect plus one read (or the one immediate retry).
        return cls(
            client,
            ttl_s=settings.cache_ttl_s,
            call_timeout_s=2 * timeout,
            breaker=breaker,
            probe_timeout_s=settings.redis_connect_timeout_s,
        )

    @property
    def breaker_opened_total(self) -> int:
        """How many times the breaker opened since start."""
        return self._breaker.opened_total

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order with one MGET; all ``None`` when Redis is unavailable."""
        if not keys:
            return []
        values = await self._guarded("MGET", lambda: self._client.mget(keys))
        if not isinstance(values, list):
            self.misses += len(keys)
            return [None] * len(keys)
        found: list[bytes | None] = [v if isinstance(v, bytes) else None for v in values]
        hits = sum(v is not None for v in found)
        self.hits += hits
        self.misses += len(found) - hits
        return found

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items`` with the TTL in one script call (one round trip); dropped on failure."""
        if not items:
            return
        keys = list(items)
        args: list[bytes | int] = [*items.values(), self._ttl_ms]
        await self._guarded("SET script", lambda: self._set_many_script(keys=keys, args=args))

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self._close_client()

    def _refused(self) -> None:
        self._succeeded()

    def _succeeded(self) -> None:
        """Close the breaker; log the recovery once."""
        if self._breaker.record_success():
            _log.info("Redis cache reachable again; caching resumed")
