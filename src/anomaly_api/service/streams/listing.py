"""Pages of live streams, ordered by id: what an operator's overview lists (``GET /streams``).

Ordering by id gives a cursor that stays valid while streams come and go (the id the last
page ended with): a stream appended to between two pages is neither listed twice nor
skipped, unlike an offset into a list ordered by activity. A page costs a pass over the
live streams (at most ``stream_max_streams``) in either backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LIST_LUA", "ListedStream", "page_of"]


@dataclass(frozen=True, slots=True)
class ListedStream:
    """A live stream as a page lists it."""

    stream_id: str
    expires_in_s: float
    """Idle time left before the stream expires (each append resets it)."""


def page_of(
    streams: Iterable[ListedStream], *, limit: int, after: str | None
) -> list[ListedStream]:
    """The first ``limit`` streams by id whose id sorts after ``after`` (all when None)."""
    chosen = [s for s in streams if after is None or s.stream_id > after]
    chosen.sort(key=lambda s: s.stream_id)
    return chosen[:limit]


# KEYS: live set. Prunes expired ids like the append does, then replies {now (ms, Redis
# clock), id, expiry (ms), id, expiry, ...} for every live stream: the page is chosen in
# Python, as Lua's string order follows the server's locale, not the bytes.
LIST_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
table.insert(out, 1, tostring(now))
return out
"""
