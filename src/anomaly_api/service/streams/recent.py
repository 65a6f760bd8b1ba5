"""Each stream's recent scores: a bounded ring of (timestamp, score, threshold, is_anomaly).

What an operator's plot of a stream needs (``GET /streams/{id}/scores``), kept by the
stream store next to the window and forgotten with it: a restart (new stream, new model
key, ``DELETE``) starts an empty ring, and the ring expires with the window.

In process memory the ring is a ``deque`` of fixed length. In Redis it is a sorted set
scored by timestamp, each member the packed entry (``ENTRY``): a stream's timestamps
strictly increase, so members are unique, replicas writing their appends in any order
still read back in time order, and a script resent after a dropped connection adds
nothing twice. A write is one script call (add, trim to the newest ``size``, take the
window's remaining TTL).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

__all__ = [
    "ENTRY",
    "READ_LUA",
    "WRITE_LUA",
    "RecentRing",
    "RecentScore",
    "decode_entries",
    "write_args",
]

ENTRY = struct.Struct("<dddB")
"""Timestamp (epoch s), score, threshold, is_anomaly (0/1): 25 bytes per reading."""


@dataclass(frozen=True, slots=True)
class RecentScore:
    """One scored reading of a stream, as its plot shows it."""

    timestamp: float
    """Epoch seconds."""
    score: float
    """The reading's ``anomaly_score``."""
    threshold: float
    """The score at which this reading would have been flagged."""
    is_anomaly: bool


class RecentRing:
    """The newest ``size`` scores of one stream life, in process memory."""

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: deque[RecentScore] = deque(maxlen=size)

    def add(self, entries: Iterable[RecentScore]) -> None:
        """Append entries (oldest first); the oldest beyond ``size`` fall off."""
        self._entries.extend(entries)

    def newest(self, limit: int) -> list[RecentScore]:
        """The newest ``limit`` entries, oldest first."""
        entries = self._entries
        return list(islice(entries, max(0, len(entries) - limit), None))


# KEYS: ring, window key. ARGV: restarted ('1': drop the previous life's entries), size,
# then pairs of score (timestamp) and member (ENTRY). Reply: 1 when written, 0 when the
# window is gone (a deleted or expired stream gets no ring back).
WRITE_LUA = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 0 end
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('ZADD', KEYS[1], unpack(ARGV, 3))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS: ring, window key. ARGV: limit. Reply: false when the stream does not exist, else
# the newest `limit` members, oldest first.
READ_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
return redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
"""


def write_args(entries: Sequence[RecentScore], *, restarted: bool, size: int) -> list[bytes]:
    """``WRITE_LUA``'s arguments for the newest ``size`` of ``entries``."""
    args: list[bytes] = [b"1" if restarted else b"0", str(size).encode()]
    for entry in entries[max(0, len(entries) - size) :]:
        args.append(repr(entry.timestamp).encode())
        args.append(ENTRY.pack(entry.timestamp, entry.score, entry.threshold, entry.is_anomaly))
    return args


def decode_entries(members: Iterable[bytes]) -> list[RecentScore]:
    """Members read back from Redis (``READ_LUA``), oldest first."""
    out = []
    for member in members:
        timestamp, score, threshold, flag = ENTRY.unpack(member)
        out.append(RecentScore(timestamp, score, threshold, bool(flag)))
    return out
