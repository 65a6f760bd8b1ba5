"""Each stream's recent scores: a bounded ring of (timestamp, score, threshold, is_anomaly).

What an operator's plot of a stream needs (``GET /streams/{id}/scores``), kept by the
stream store next to the window and forgotten with it: a restart (new stream, new model
key, ``DELETE``) starts an empty ring, and the ring expires with the window.

In process memory the ring is a ``deque`` of fixed length. In Redis it is a sorted set
scored by timestamp, each member the packed entry (``ENTRY``): a stream's timestamps
strictly increase, so members are unique, replicas writing their appends in any order
still read back in time order, and a script resent after a dropped connection adds
nothing twice. Appends do not wait for it: a replica gathers the scores of every stream
(``PendingScores``) and writes them all in one script call at most ``FLUSH_S`` later (add,
trim to the newest ``size``, take the window's remaining TTL), so the append path costs
no round trip at all, and a busy replica one call per ``FLUSH_S`` for all its streams.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

__all__ = [
    "ENTRY",
    "FLUSH_S",
    "MAX_STREAMS_PER_CALL",
    "READ_LUA",
    "WRITE_LUA",
    "PendingScores",
    "RecentRing",
    "RecentScore",
    "decode_entries",
    "write_args",
]

FLUSH_S = 0.05
"""Longest wait (seconds) of a replica's recent scores before they are written to Redis."""

MAX_STREAMS_PER_CALL = 500
"""Streams written by one script call at most (a long call would hold Redis up)."""

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


class PendingScores:
    """Recent scores a replica has not written to Redis yet, by stream (the newest ``size``)."""

    __slots__ = ("_streams", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._streams: dict[str, tuple[bool, list[RecentScore]]] = {}

    def add(self, stream_id: str, entries: Sequence[RecentScore], *, restarted: bool) -> None:
        """Queue ``entries``; ``restarted`` drops what was queued for the stream's last life
        and, once written, what Redis holds of it."""
        queued = None if restarted else self._streams.get(stream_id)
        if queued is None:
            queued = (restarted, [])
            self._streams[stream_id] = queued
        queued[1].extend(entries)
        del queued[1][: max(0, len(queued[1]) - self.size)]

    def forget(self, stream_id: str) -> None:
        """Drop what is queued for a deleted stream."""
        self._streams.pop(stream_id, None)

    def take(self) -> list[tuple[str, bool, list[RecentScore]]]:
        """Everything queued, as ``(stream id, restarted, entries)``; the queue is emptied."""
        taken, self._streams = self._streams, {}
        return [(sid, restarted, entries) for sid, (restarted, entries) in taken.items()]

    def __bool__(self) -> bool:
        return bool(self._streams)


# KEYS: ring and window key of each stream. ARGV: size, then for each stream: restarted
# ('1': drop the previous life's entries first), n, then n pairs of score (timestamp) and
# member (ENTRY). A stream whose window is gone (deleted, expired) gets no ring back.
WRITE_LUA = """
local size, a = tonumber(ARGV[1]), 2
for k = 1, #KEYS, 2 do
  local restarted, n = ARGV[a], tonumber(ARGV[a + 1])
  local last = a + 1 + 2 * n
  local ttl = redis.call('PTTL', KEYS[k + 1])
  if ttl > 0 and n > 0 then
    if restarted == '1' then redis.call('DEL', KEYS[k]) end
    redis.call('ZADD', KEYS[k], unpack(ARGV, a + 2, last))
    redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(size + 1))
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
  a = last + 1
end
return 1
"""

# KEYS: ring, window key. ARGV: limit. Reply: false when the stream does not exist, else
# the newest `limit` members, oldest first.
READ_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
return redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
"""


def write_args(
    taken: Sequence[tuple[str, bool, list[RecentScore]]], size: int
) -> tuple[list[str], list[bytes]]:
    """Stream ids of ``taken`` (``PendingScores.take``) in ``WRITE_LUA``'s key order, and its
    arguments; the caller maps each id to its two keys."""
    ids: list[str] = []
    args: list[bytes] = [str(size).encode()]
    for stream_id, restarted, entries in taken:
        ids.append(stream_id)
        args += (b"1" if restarted else b"0", str(len(entries)).encode())
        for entry in entries:
            args.append(repr(entry.timestamp).encode())
            args.append(ENTRY.pack(entry.timestamp, entry.score, entry.threshold, entry.is_anomaly))
    return ids, args


def decode_entries(members: Iterable[bytes]) -> list[RecentScore]:
    """Members read back from Redis (``READ_LUA``), oldest first."""
    out = []
    for member in members:
        timestamp, score, threshold, flag = ENTRY.unpack(member)
        out.append(RecentScore(timestamp, score, threshold, bool(flag)))
    return out
