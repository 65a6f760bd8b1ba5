"""Redis stream store: every replica behind the load balancer sees the same streams.

Layout (``prefix`` from ``Settings.stream_prefix``)::

    {prefix}w:{stream_id}   STRING  header + one record per reading, PX = idle TTL
    {prefix}a:{stream_id}   STRING  the stream's alarm state (JSON, ``StoredAlarm``), expires with
                                    the window
    {prefix}e:{stream_id}   HASH    the stream's events: <id> -> record (JSON), <id>:l -> current
                                    feedback label, <id>:f -> feedback entries (JSON array),
                                    last -> the newest event's id; expires with the window
    {prefix}r:{stream_id}   ZSET    the stream's recent scores (``recent.py``; written in batches,
                                    not by the append), expires with the window
    {prefix}live            ZSET    stream id -> expiry (ms, Redis clock): the live-stream bound

    header  = <BHdd8sH  version=1, n_features, total, first timestamp, last call's token,
              model-key length; then the model key (UTF-8)
    record  = <d * (1 + n_features)  timestamp, then the values: float64, exactly as sent

An append is ONE script call (EVALSHA of a script registered once): it prunes expired
ids from the live set, reads the window, checks the model key, feature count and order
(first new timestamp > last stored one), enforces the bound for a new stream, appends,
trims to the window, writes with the idle TTL and returns the new value -- so concurrent
appends from any number of replicas are serialised by Redis, and a refused one changes
nothing. Each call carries a random 8-byte token stored in the header: when redis-py
resends the script after a dropped connection and the first send had in fact run, the
script recognises its own token and answers with the window instead of a duplicate error.

The alarm state is written after scoring, by a second script: a compare-and-set on the
stream's epoch (new at every restart) and on the reading count the state has reached
(``update_alarm``), so two replicas scoring appends of one stream at once apply their
alarms in reading order or not at all (``service/streamplane.py`` retries and fails open).

Fail-open: calls go through the same circuit breaker and timeouts as the Redis cache
(``service/cache``). When a call fails or the breaker is open, the append, read or
delete is served by an in-process ``InMemoryStreamStore`` instead, and ``degraded`` is
True until Redis answers again. What that costs: during the outage a stream's window
restarts in this replica's memory (readings appended to Redis before are not there; a
stream whose requests land on several replicas gets one partial window per replica).
When Redis answers again, Redis's window is used again and the memory windows are
dropped: readings accepted during the outage are in no window afterwards, and the
Redis window resumes with a gap (later readings are still in order, so they are
accepted). A call that timed out may still have run, or run later (a frozen Redis works
through the commands queued on its sockets when it resumes): that reading is then in
Redis as well as in memory. A delete served from memory does not reach Redis.

Needs a standalone Redis (or a single shard): the window key and the live set are
touched by one script. The client must not decode responses (windows are binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
import struct
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from redis.asyncio import Redis

from anomaly_api.config import Settings
from anomaly_api.detection.following import (
    Followed,
    advance,
    pack_followed,
    unpack_followed,
)
from anomaly_api.service.cache.breaker import CircuitBreaker
from anomaly_api.service.redis_support import (
    FAILED,
    GuardedRedisCalls,
    breaker_from_settings,
    client_from_settings,
)
from anomaly_api.service.streams.base import (
    MAX_FEEDBACK_HISTORY,
    RECORD_DTYPE,
    AlarmUpdateStatus,
    FeedbackStatus,
    FollowSpec,
    StoredAlarm,
    StoredEvent,
    StreamState,
    StreamWindow,
    StreamWindowMoved,
    check_model_key,
    check_stream_id,
    check_window,
    events_to_drop,
    new_epoch,
    split_records,
    to_records,
)
from anomaly_api.service.streams.errors import (
    InvalidReadingsError,
    StreamCapacityError,
    StreamOrderError,
)
from anomaly_api.service.streams.listing import LIST_LUA, ListedStream, page_of
from anomaly_api.service.streams.memory import (
    DEFAULT_MAX_EVENTS,
    DEFAULT_RECENT_SCORES,
    InMemoryStreamStore,
)
from anomaly_api.service.streams.recent import (
    FLUSH_S,
    MAX_STREAMS_PER_CALL,
    READ_LUA,
    WRITE_LUA,
    PendingScores,
    RecentScore,
    decode_entries,
    write_args,
)
from anomaly_api.service.streams.redis_known import HEADER, KnownStreams, Receipt, predict

_log = logging.getLogger(__name__)

T = TypeVar("T")


_VERSION = 1

# KEYS: window key, live set, alarm key, events hash (dropped when the stream restarts).
# ARGV: stream id, model key, n_features, window, TTL (ms), max streams, token (8 bytes),
# records, epoch (hex) of a fresh alarm state.
# Replies {status, payload, alarm, followed}: status 'new', 'ok', 'model' (model key
# changed: window restarted), 'replay' (this token already ran) with the new value, the
# alarm state (JSON; a fresh one, seen = readings before this append, when the stream
# restarted or had none) and the followed state (below); 'order' with the last stored
# timestamp (8 bytes); 'shape' with the stored feature count; 'full'.
# The followed state (KEYS[5]; ``following.pack_followed``: float64 pairs of level and
# deviation per channel) is stored as the state before the last following append, then
# the state after it. ARGV[10]: the weight alpha (8 bytes, '' when this append does not
# follow: the state is left as it is), ARGV[11]: the state a new life starts from. Each
# reading moves it with ``following.advance``'s operations in the same order (Lua numbers
# are IEEE doubles), so the bits are Python's.
_APPEND_BODY = """
local key, live, akey, ekey, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, model = ARGV[1], ARGV[2]
local nf, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local token, recs = ARGV[7], ARGV[8]
local size = 8 * (nf + 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
local old = redis.call('GET', key)
local status, total, first, body = 'new', 0, struct.unpack('<d', recs), ''
local prior = ''
if old then
  local _, onf, ototal, ofirst, otoken, mlen = struct.unpack('<BHddc8H', old)
  prior = otoken
  if otoken == token then
    redis.call('PEXPIRE', key, ttl)
    redis.call('ZADD', live, now + ttl, member)
    redis.call('PEXPIRE', akey, ttl)
    redis.call('PEXPIRE', ekey, ttl)
    local held = redis.call('GET', fkey) or ''
    redis.call('PEXPIRE', fkey, ttl)
    return {'replay', old, redis.call('GET', akey) or '', string.sub(held, 1, 16 * nf)}
  end
  if string.sub(old, 30, 29 + mlen) == model then
    if onf ~= nf then return {'shape', tostring(onf)} end
    local last = string.sub(old, -size, -size + 7)
    if struct.unpack('<d', recs) <= struct.unpack('<d', last) then return {'order', last} end
    status, total, first, body = 'ok', ototal, ofirst, string.sub(old, 30 + mlen)
  else
    status = 'model'
  end
elseif not redis.call('ZSCORE', live, member) and redis.call('ZCARD', live) >= cap then
  return {'full', ''}
end
body = body .. recs
local keep = window * size
if #body > keep then body = string.sub(body, -keep) end
local value = struct.pack('<BHddc8H', 1, nf, total + #recs / size, first, token, #model)
value = value .. model .. body
redis.call('SET', key, value, 'PX', ttl)
redis.call('ZADD', live, now + ttl, member)
local alarm = false
if status == 'ok' then
  alarm = redis.call('GET', akey)
  redis.call('PEXPIRE', ekey, ttl)
else
  redis.call('DEL', ekey)
end
if alarm then
  redis.call('PEXPIRE', akey, ttl)
else
  alarm = string.format('{"epoch":"%s","state":{"recent":[],"last_alarm":null,"seen":%d,'
    .. '"alarms":0},"unit":null,"last_alarm_reading":null,"last_alarm_time":null}',
    ARGV[9], total)
  redis.call('SET', akey, alarm, 'PX', ttl)
end
local followed = ''
if status ~= 'ok' then redis.call('DEL', fkey) end
if ARGV[10] ~= '' then
  local alpha = struct.unpack('<d', ARGV[10])
  local before = ARGV[11]
  if status == 'ok' then
    local held = redis.call('GET', fkey)
    if held then before = string.sub(held, 16 * nf + 1) end
  end
  local m, d = {}, {}
  for c = 1, nf do
    m[c] = struct.unpack('<d', before, 16 * c - 15)
    d[c] = struct.unpack('<d', before, 16 * c - 7)
  end
  for at = 0, #recs - size, size do
    for c = 1, nf do
      local diff = struct.unpack('<d', recs, at + 8 * c + 1) - m[c]
      m[c] = m[c] + alpha * diff
      d[c] = d[c] + alpha * (math.abs(diff) - d[c])
    end
  end
  local after = {}
  for c = 1, nf do after[c] = struct.pack('<dd', m[c], d[c]) end
  followed = before
  redis.call('SET', fkey, before .. table.concat(after), 'PX', ttl)
else
  redis.call('PEXPIRE', fkey, ttl)
end
"""
_APPEND_LUA = _APPEND_BODY + "return {status, value, alarm, followed}\n"

# KEYS: alarm key, window key, events hash. ARGV: epoch, expected seen, expected revision,
# new state (JSON), newest event id ('' when no event is written), d, d ids of events to
# drop, then pairs of event id and record (JSON). Replies {'ok'}, {'behind', current
# state} (not there yet, or another revision), {'stale'} (gone, other epoch or already
# past). The new state and the events take the window's remaining
# TTL: they expire with the window.
_CAS_FUNCTION = """
local function alarm_cas(akey, wkey, ekey, argv, o)
  local cur = redis.call('GET', akey)
  if not cur then return {'stale', ''} end
  local ok, decoded = pcall(cjson.decode, cur)
  if not ok or decoded['epoch'] ~= argv[o + 1] then return {'stale', ''} end
  local seen, expected = tonumber(decoded['state']['seen']), tonumber(argv[o + 2])
  if seen < expected then return {'behind', cur} end
  if seen > expected then return {'stale', ''} end
  if tonumber(decoded['revision'] or 0) ~= tonumber(argv[o + 3]) then return {'behind', cur} end
  local ttl = redis.call('PTTL', wkey)
  if ttl <= 0 then return {'stale', ''} end
  redis.call('SET', akey, argv[o + 4], 'PX', ttl)
  if argv[o + 5] ~= '' then
    local d = tonumber(argv[o + 6])
    for i = o + 7, o + 6 + d do
      redis.call('HDEL', ekey, argv[i], argv[i] .. ':l', argv[i] .. ':f')
    end
    for i = o + 7 + d, #argv, 2 do redis.call('HSET', ekey, argv[i], argv[i + 1]) end
    redis.call('HSET', ekey, 'last', argv[o + 5])
    redis.call('PEXPIRE', ekey, ttl)
  end
  return {'ok', ''}
end
"""
_ALARM_CAS_LUA = _CAS_FUNCTION + "return alarm_cas(KEYS[1], KEYS[2], KEYS[3], ARGV, 0)\n"

# The append and the compare-and-set in one call, for a replica that knows the stream's
# window (it wrote it last). KEYS: the append's. ARGV: the append's eleven, the token the
# window is expected to carry (the replica's last append's), then the compare-and-set's.
# Replies as the append does, with the compare-and-set's status fifth when the append
# found that window ({'ok', '', '', '', 'ok'}: both written; the window is the one
# expected); without it, only the append ran.
_APPEND_ALARM_LUA = (
    _CAS_FUNCTION
    + _APPEND_BODY
    + """if status == 'ok' and prior == ARGV[12] then
  local cas = alarm_cas(akey, key, ekey, ARGV, 12)
  if cas[1] == 'ok' then return {'ok', '', '', '', 'ok'} end
  return {status, value, alarm, followed, cas[1]}
end
return {status, value, alarm, followed}
"""
)

# KEYS: events hash, window key. ARGV: before (0: from the newest), limit. Reply: {0} when
# the stream does not exist, else {1, record, feedback, record, feedback, ...} newest first.
_EVENTS_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {0} end
local out = {1}
local last = redis.call('HGET', KEYS[1], 'last')
if not last then return out end
local prefix, n = string.sub(last, 1, 8), tonumber(string.sub(last, 10))
local before, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if before > 0 and before - 1 < n then n = before - 1 end
while n >= 1 and #out < 1 + 2 * limit do
  local id = prefix .. '-' .. n
  local record = redis.call('HGET', KEYS[1], id)
  if not record then break end
  out[#out + 1] = record
  out[#out + 1] = redis.call('HGET', KEYS[1], id .. ':f') or ''
  n = n - 1
end
return out
"""

# KEYS: events hash. ARGV: event id, label, entry (JSON), most entries kept. Replies
# {'missing'}, or {'ok' | 'same', record, feedback}: 'same' when the event's current label
# is this one already (nothing written).
_FEEDBACK_LUA = """
local id, label = ARGV[1], ARGV[2]
local record = redis.call('HGET', KEYS[1], id)
if not record then return {'missing'} end
local status = 'same'
if redis.call('HGET', KEYS[1], id .. ':l') ~= label then
  local history = {}
  local cur = redis.call('HGET', KEYS[1], id .. ':f')
  if cur then history = cjson.decode(cur) end
  history[#history + 1] = cjson.decode(ARGV[3])
  while #history > tonumber(ARGV[4]) do table.remove(history, 1) end
  redis.call('HSET', KEYS[1], id .. ':l', label, id .. ':f', cjson.encode(history))
  status = 'ok'
end
return {status, record, redis.call('HGET', KEYS[1], id .. ':f') or ''}
"""

# KEYS: window key, alarm key, followed state. Reply: nil, or {value, PTTL in ms, alarm
# state or '', followed state or ''}.
_GET_LUA = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
return {value, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) or '',
  redis.call('GET', KEYS[3]) or ''}
"""

# KEYS: window key, live set, alarm key, events hash, recent scores, followed state.
# ARGV: stream id. Reply: 1 when the window existed.
_DELETE_LUA = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return redis.call('DEL', KEYS[1])
"""

# KEYS: live set. Reply: live streams after pruning expired ids.
_COUNT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


@dataclasses.dataclass(frozen=True, slots=True)
class _Decoded:
    n_features: int
    total: int
    first_timestamp: float
    model_key: str
    records: NDArray[np.float64]


def decode_window(value: bytes) -> _Decoded:
    """Header and records of a stored window value."""
    version, n_features, total, first, _token, key_len = HEADER.unpack_from(value)
    if version != _VERSION:  # pragma: no cover - only one version exists
        raise ValueError(f"unknown stream encoding version {version}")
    start = HEADER.size + key_len
    records = np.frombuffer(value, dtype=RECORD_DTYPE, offset=start).reshape(-1, n_features + 1)
    return _Decoded(
        n_features=n_features,
        total=int(total),
        first_timestamp=first,
        model_key=value[HEADER.size : start].decode("utf-8"),
        records=records,
    )


def _stored_followed(raw: bytes, n_features: int) -> Followed | None:
    """The followed state after the latest following append (None when there is none)."""
    if len(raw) != 32 * n_features:
        return None
    return unpack_followed(raw[16 * n_features :])


def _stored_alarm(raw: bytes | None) -> StoredAlarm | None:
    """A stored alarm state, or None when absent or unreadable (then it is not kept)."""
    if not raw:
        return None
    try:
        return StoredAlarm.from_json(raw)
    except ValueError:
        _log.warning("unreadable stream alarm state ignored", exc_info=True)
        return None


class RedisStreamStore(GuardedRedisCalls):
    """Streams in Redis, one atomic script call per append; process memory while Redis is down.

    Attributes
    ----------
    errors : int
        Redis calls that failed (timeout, connection, error reply), probes included.
    skipped : int
        Calls the open breaker did not send.
    fallbacks : int
        Calls served from process memory (failed or skipped).
    """

    _log = _log
    _label = "Redis stream"
    _outage_message = (
        "Redis stream store failing (%s: %s); streams served from process memory, "
        "next try in %.1f s"
    )

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        max_streams: int,
        idle_ttl_s: float,
        max_window: int,
        call_timeout_s: float,
        breaker: CircuitBreaker,
        max_concurrent_calls: int = 64,
        max_events: int = DEFAULT_MAX_EVENTS,
        recent_scores: int = DEFAULT_RECENT_SCORES,
        log_interval_s: float = 30.0,
        probe_timeout_s: float | None = None,
    ) -> None:
        super().__init__(
            client, call_timeout_s, breaker, log_interval_s, probe_timeout_s=probe_timeout_s
        )
        self._slots = asyncio.Semaphore(max_concurrent_calls)
        self._prefix = prefix
        self._live_key = f"{prefix}live"
        self.max_streams = max_streams
        self.max_window = max_window
        self.max_events = max_events
        self._ttl_ms = max(1, round(idle_ttl_s * 1000))
        self._append_script = client.register_script(_APPEND_LUA)
        self._get_script = client.register_script(_GET_LUA)
        self._delete_script = client.register_script(_DELETE_LUA)
        self._count_script = client.register_script(_COUNT_LUA)
        self._alarm_cas_script = client.register_script(_ALARM_CAS_LUA)
        self._append_alarm_script = client.register_script(_APPEND_ALARM_LUA)
        self._events_script = client.register_script(_EVENTS_LUA)
        self._feedback_script = client.register_script(_FEEDBACK_LUA)
        self._recent_write_script = client.register_script(WRITE_LUA)
        self._recent_read_script = client.register_script(READ_LUA)
        self._list_script = client.register_script(LIST_LUA)
        self._fallback = InMemoryStreamStore(
            max_streams=max_streams,
            idle_ttl_s=idle_ttl_s,
            max_window=max_window,
            max_events=max_events,
            recent_scores=recent_scores,
        )
        self._fallback_used = False
        self.fallbacks = 0
        self._known = KnownStreams()
        self.joined = 0
        """Appends sent with their alarm state's update in one call (``redis_known.py``)."""
        self._pending = PendingScores(recent_scores)
        self._flusher: asyncio.Future[None] | None = None
        # One flush at a time: a read waits for a write already taken from the queue (else it
        # could miss this replica's latest scores), and two flushes never land out of order.
        self._flushing = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStreamStore:
        """Client with the cache's timeouts and breaker settings; does not connect yet."""
        timeout = settings.redis_timeout_s
        client = client_from_settings(
            settings,
            # The semaphore keeps calls under the pool size (a full pool raises, which would
            # count as an outage); the spare connections serve health probes.
            max_connections=settings.stream_redis_max_connections + 4,
        )
        breaker = breaker_from_settings(settings)
        return cls(
            client,
            prefix=settings.stream_prefix,
            max_streams=settings.stream_max_streams,
            idle_ttl_s=settings.stream_idle_ttl_s,
            max_window=settings.stream_max_window,
            call_timeout_s=2 * timeout,
            breaker=breaker,
            max_concurrent_calls=settings.stream_redis_max_connections,
            max_events=settings.stream_max_events,
            recent_scores=settings.stream_recent_scores,
            probe_timeout_s=settings.redis_connect_timeout_s,
        )

    @property
    def degraded(self) -> bool:
        """True while the breaker is not closed: streams are served from process memory."""
        return self._breaker.state != "closed"

    def namespaced(self, name: str) -> RedisStreamStore:
        """A store of the same Redis, client, breaker and call slots whose streams live
        under ``<prefix>m/<name>/`` (one model's streams, never mixed with another's)."""
        store = copy.copy(self)
        store._prefix = f"{self._prefix}m/{name}/"
        store._live_key = f"{store._prefix}live"
        store._fallback = self._fallback.sibling()
        store._fallback_used = False
        store.fallbacks = 0
        return store

    def window_key(self, stream_id: str) -> str:
        """Redis key of a stream's window."""
        return f"{self._prefix}w:{stream_id}"

    def alarm_key(self, stream_id: str) -> str:
        """Redis key of a stream's alarm state."""
        return f"{self._prefix}a:{stream_id}"

    def events_key(self, stream_id: str) -> str:
        """Redis key of a stream's events."""
        return f"{self._prefix}e:{stream_id}"

    def follow_key(self, stream_id: str) -> str:
        """Redis key of a stream's followed state."""
        return f"{self._prefix}f:{stream_id}"

    def recent_key(self, stream_id: str) -> str:
        """Redis key of a stream's recent scores."""
        return f"{self._prefix}r:{stream_id}"

    @property
    def live_key(self) -> str:
        """Redis key of the live-stream set."""
        return self._live_key

    async def append(
        self,
        stream_id: str,
        timestamps: Sequence[float] | NDArray[np.float64],
        rows: ArrayLike,
        *,
        window: int,
        model_key: str,
        defer: bool = False,
        follow: FollowSpec | None = None,
    ) -> StreamWindow:
        """Append readings (see ``StreamStore.append``) in one script call; all or nothing.
        ``defer``: when this replica wrote the stream's window and alarm state last, the
        append waits for ``update_alarm`` and is sent with it (``redis_known.py``)."""
        check_stream_id(stream_id)
        model = check_model_key(model_key)
        check_window(window, self.max_window)
        records = to_records(stream_id, timestamps, rows)
        n_features = records.shape[1] - 1
        keys = [
            self.window_key(stream_id),
            self._live_key,
            self.alarm_key(stream_id),
            self.events_key(stream_id),
            self.follow_key(stream_id),
        ]
        token = os.urandom(8)
        args: list[bytes | str | int] = [
            stream_id,
            model,
            n_features,
            window,
            self._ttl_ms,
            self.max_streams,
            token,
            records.tobytes(),
            new_epoch(),
            b"" if follow is None else struct.pack("<d", follow.alpha),
            b"" if follow is None else pack_followed(follow.start),
        ]
        known = self._known.get(keys[0]) if defer and not self.degraded else None
        if known is not None:
            value = predict(known[0], model, records, window, token)
            alarm = None if value is None else _stored_alarm(known[1])
            held = known[2]  # the stored followed state: before and after the last append
            if value is not None and alarm is not None and (follow is None or held):
                prior = HEADER.unpack_from(known[0])[4]
                receipt = Receipt(value, records, model_key, window, keys, args, prior, follow)
                receipt.followed = held
                before = None
                if follow is not None:  # what the script will find and store
                    last = held[len(held) // 2 :]
                    before = unpack_followed(last)
                    after = advance(before, records[:, 1:].tolist(), follow.alpha)
                    receipt.followed = last + pack_followed(after)
                return self._window(stream_id, value, b"ok", alarm, receipt, followed=before)
        reply = await self._guarded("append", lambda: self._append_script(keys=keys, args=args))
        if reply is FAILED:
            return self._fell_back(stream_id, records, window, model_key, follow=follow)
        assert isinstance(reply, list)
        return self._appended(stream_id, records, window, model_key, reply, follow=follow)

    def _fell_back(
        self,
        stream_id: str,
        records: NDArray[np.float64],
        window: int,
        model_key: str,
        *,
        follow: FollowSpec | None,
    ) -> StreamWindow:
        """The append served from process memory (Redis did not answer)."""
        self._fallback_used = True
        self.fallbacks += 1
        self._known.forget(self.window_key(stream_id))
        fallback = self._fallback.append_now(
            stream_id,
            records[:, 0],
            records[:, 1:],
            window=window,
            model_key=model_key,
            follow=follow,
        )
        return dataclasses.replace(fallback, degraded=True)

    def _appended(
        self,
        stream_id: str,
        records: NDArray[np.float64],
        window: int,
        model_key: str,
        reply: list[bytes],
        *,
        follow: FollowSpec | None,
    ) -> StreamWindow:
        """The window the append script answered, or its refusal raised."""
        status, payload = reply[0], reply[1]
        if status == b"order":
            (last,) = struct.unpack("<d", payload)
            raise StreamOrderError(
                stream_id=stream_id, timestamp=float(records[0, 0]), previous=last, index=0
            )
        if status == b"shape":
            raise InvalidReadingsError(
                f"stream {stream_id!r} holds readings of {int(payload)} features under "
                f"model key {model_key!r}, got {records.shape[1] - 1}"
            )
        if status == b"full":
            raise StreamCapacityError(self.max_streams)
        receipt = Receipt(payload, records, model_key, window, follow=follow)
        before = None
        if follow is not None and reply[3]:
            before = unpack_followed(reply[3])
            after = advance(before, records[:, 1:].tolist(), follow.alpha)
            receipt.followed = reply[3] + pack_followed(after)
        return self._window(
            stream_id, payload, status, _stored_alarm(reply[2]), receipt, followed=before
        )

    @staticmethod
    def _window(
        stream_id: str,
        value: bytes,
        status: bytes,
        alarm: StoredAlarm | None,
        receipt: Receipt,
        *,
        followed: Followed | None = None,
    ) -> StreamWindow:
        decoded = decode_window(value)
        ts, values = split_records(decoded.records)
        return StreamWindow(
            stream_id=stream_id,
            timestamps=ts,
            values=values,
            total=decoded.total,
            model_key=decoded.model_key,
            new_stream=status == b"new",
            model_changed=status == b"model",
            alarm=alarm,
            receipt=receipt,
            followed=followed,
        )

    async def settle(self, window: StreamWindow) -> None:
        """Send a deferred append of ``window`` alone (its scoring failed: the readings are
        appended all the same, as without ``defer``)."""
        receipt = window.receipt
        if not isinstance(receipt, Receipt) or receipt.args is None or receipt.keys is None:
            return
        keys, args = receipt.keys, receipt.args
        receipt.keys = receipt.args = None
        self._known.forget(self.window_key(window.stream_id))
        reply = await self._guarded("append", lambda: self._append_script(keys=keys, args=args))
        if reply is FAILED:  # the caller's error is the answer: a refusal here changes nothing
            refused = (InvalidReadingsError, StreamCapacityError, StreamOrderError)
            with contextlib.suppress(*refused):
                self._fell_back(
                    window.stream_id,
                    receipt.records,
                    receipt.window,
                    receipt.model_key,
                    follow=receipt.follow,
                )

    async def get(self, stream_id: str) -> StreamState | None:
        """State of a live stream; reading it does not refresh its expiry."""
        check_stream_id(stream_id)
        keys = [self.window_key(stream_id), self.alarm_key(stream_id), self.follow_key(stream_id)]
        reply = await self._guarded("get", lambda: self._get_script(keys=keys))
        if reply is FAILED:
            self.fallbacks += 1
            state = self._fallback.get_now(stream_id)
            return None if state is None else dataclasses.replace(state, degraded=True)
        if reply is None:
            return None
        assert isinstance(reply, list)
        decoded = decode_window(reply[0])
        return StreamState(
            stream_id=stream_id,
            total=decoded.total,
            first_timestamp=decoded.first_timestamp,
            last_timestamp=float(decoded.records[-1, 0]),
            window_length=int(decoded.records.shape[0]),
            n_features=decoded.n_features,
            model_key=decoded.model_key,
            expires_in_s=max(0, int(reply[1])) / 1000,
            alarm=_stored_alarm(reply[2]),
            followed=_stored_followed(reply[3], decoded.n_features),
        )

    async def read_alarm(self, stream_id: str, *, degraded: bool = False) -> StoredAlarm | None:
        """The stream's stored alarm state; None when gone or Redis did not answer."""
        check_stream_id(stream_id)
        if degraded:
            return self._fallback.read_alarm_now(stream_id)
        key = self.alarm_key(stream_id)
        reply = await self._guarded("read_alarm", lambda: self._client.get(key))
        if reply is FAILED or reply is None:
            return None
        assert isinstance(reply, bytes)
        return _stored_alarm(reply)

    async def update_alarm(
        self,
        stream_id: str,
        alarm: StoredAlarm,
        *,
        expected_seen: int,
        degraded: bool = False,
        events: Sequence[tuple[str, bytes]] = (),
        expected_revision: int | None = None,
        window: StreamWindow | None = None,
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """Compare-and-set of the alarm state and the events it wrote, in one script call
        (``StreamStore.update_alarm``), with ``window``'s append when it was deferred.

        ``failed`` when Redis does not answer: the state is not written anywhere (the
        window the readings went to is in Redis, not in process memory)."""
        check_stream_id(stream_id)
        if degraded:
            return self._fallback.update_alarm_now(
                stream_id,
                alarm,
                expected_seen=expected_seen,
                events=events,
                expected_revision=expected_revision,
            )
        keys = [self.alarm_key(stream_id), self.window_key(stream_id), self.events_key(stream_id)]
        drop = events_to_drop(events, self.max_events)
        state = alarm.to_json()
        args: list[bytes | str | int] = [
            alarm.epoch,
            expected_seen,
            alarm.revision if expected_revision is None else expected_revision,
            state,
            events[-1][0] if events else "",
            len(drop),
            *drop,
            *(part for pair in events for part in pair),
        ]
        receipt = None if window is None else window.receipt
        if not isinstance(receipt, Receipt):
            self._known.forget(self.window_key(stream_id))  # a change outside appends (feedback)
        elif receipt.args is not None and receipt.keys is not None:
            return await self._append_and_update(stream_id, receipt, args, state)
        reply = await self._guarded(
            "update_alarm", lambda: self._alarm_cas_script(keys=keys, args=args)
        )
        if reply is FAILED:
            return "failed", None
        assert isinstance(reply, list)
        if reply[0] == b"ok":
            if isinstance(receipt, Receipt):
                self._known.remember(
                    self.window_key(stream_id), receipt.value, state, receipt.followed
                )
            return "ok", None
        self._known.forget(self.window_key(stream_id))
        if reply[0] == b"behind":
            current = _stored_alarm(reply[1])
            return ("behind", current) if current is not None else ("stale", None)
        return "stale", None

    async def _append_and_update(
        self, stream_id: str, receipt: Receipt, cas: list[bytes | str | int], state: bytes
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """The deferred append and the compare-and-set in one call; ``StreamWindowMoved``
        unless both were written (the append alone ran, or Redis did not answer)."""
        keys, args = receipt.keys, [*(receipt.args or ()), receipt.token, *cas]
        receipt.keys = receipt.args = None
        reply = await self._guarded(
            "append", lambda: self._append_alarm_script(keys=keys, args=args)
        )
        if reply is FAILED:
            moved = self._fell_back(
                stream_id, receipt.records, receipt.window, receipt.model_key, follow=receipt.follow
            )
            raise StreamWindowMoved(moved)
        assert isinstance(reply, list)
        if len(reply) > 4 and reply[4] == b"ok":
            self.joined += 1
            self._known.remember(self.window_key(stream_id), receipt.value, state, receipt.followed)
            return "ok", None
        self._known.forget(self.window_key(stream_id), moved=len(reply) <= 4)
        moved = self._appended(
            stream_id,
            receipt.records,
            receipt.window,
            receipt.model_key,
            reply,
            follow=receipt.follow,
        )
        raise StreamWindowMoved(moved)

    async def list_events(
        self, stream_id: str, *, limit: int, before: int | None = None
    ) -> list[StoredEvent] | None:
        """The stream's events in one script call (``StreamStore.list_events``); process
        memory's while Redis does not answer."""
        check_stream_id(stream_id)
        keys = [self.events_key(stream_id), self.window_key(stream_id)]
        args = [before or 0, limit]
        reply = await self._guarded("events", lambda: self._events_script(keys=keys, args=args))
        if reply is FAILED:
            self.fallbacks += 1
            return self._fallback.list_events_now(stream_id, limit=limit, before=before)
        assert isinstance(reply, list)
        if not reply[0]:
            return None
        return [StoredEvent(reply[i], reply[i + 1]) for i in range(1, len(reply), 2)]

    async def add_feedback(
        self, stream_id: str, event_id: str, label: str, entry: bytes
    ) -> tuple[FeedbackStatus, StoredEvent | None]:
        """Label an event in one script call (``StreamStore.add_feedback``); process
        memory's events while Redis does not answer."""
        check_stream_id(stream_id)
        keys = [self.events_key(stream_id)]
        args: list[bytes | str | int] = [event_id, label, entry, MAX_FEEDBACK_HISTORY]
        reply = await self._guarded("feedback", lambda: self._feedback_script(keys=keys, args=args))
        if reply is FAILED:
            self.fallbacks += 1
            return self._fallback.add_feedback_now(stream_id, event_id, label, entry)
        assert isinstance(reply, list)
        if reply[0] == b"missing":
            return "missing", None
        return ("same" if reply[0] == b"same" else "ok"), StoredEvent(reply[1], reply[2])

    @property
    def recent_size(self) -> int:
        """Recent scores kept per stream."""
        return self._fallback.recent_scores

    def record_recent(
        self,
        stream_id: str,
        entries: Sequence[RecentScore],
        *,
        restarted: bool,
        degraded: bool = False,
    ) -> None:
        """Queue recent scores; every stream's are written together within ``FLUSH_S``
        (``StreamStore.record_recent``). A failed write loses them: they are only shown,
        never used to decide."""
        if degraded:
            self._fallback.add_recent_now(stream_id, entries)
            return
        self._pending.add(stream_id, entries, restarted=restarted)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush_recent()

    async def flush_recent(self) -> None:
        """Write every queued recent score now (script calls of ``MAX_STREAMS_PER_CALL``),
        after any flush already under way."""
        async with self._flushing:
            taken = self._pending.take()
            for start in range(0, len(taken), MAX_STREAMS_PER_CALL):
                await self._write_recent(taken[start : start + MAX_STREAMS_PER_CALL])

    async def _write_recent(self, taken: Sequence[tuple[str, bool, list[RecentScore]]]) -> None:
        ids, args = write_args(taken, self.recent_size)
        keys = [key for sid in ids for key in (self.recent_key(sid), self.window_key(sid))]
        await self._guarded("recent", lambda: self._recent_write_script(keys=keys, args=args))

    async def recent(self, stream_id: str, *, limit: int) -> list[RecentScore] | None:
        """The newest recent scores in one script call (``StreamStore.recent``); process
        memory's while Redis does not answer."""
        check_stream_id(stream_id)
        await self.flush_recent()  # this replica's latest scores, queued or being written
        keys = [self.recent_key(stream_id), self.window_key(stream_id)]
        reply = await self._guarded(
            "recent", lambda: self._recent_read_script(keys=keys, args=[limit])
        )
        if reply is FAILED:
            self.fallbacks += 1
            return self._fallback.recent_now(stream_id, limit=limit)
        if reply is None:
            return None
        assert isinstance(reply, list)
        return decode_entries(reply)

    async def list_streams(self, *, limit: int, after: str | None = None) -> list[ListedStream]:
        """Live streams by id (``StreamStore.list_streams``), one script call; process
        memory's while Redis does not answer."""
        reply = await self._guarded("list", lambda: self._list_script(keys=[self._live_key]))
        if reply is FAILED:
            self.fallbacks += 1
            return self._fallback.list_streams_now(limit=limit, after=after)
        assert isinstance(reply, list)
        now = int(reply[0])
        listed = (
            ListedStream(reply[i].decode("utf-8"), max(0.0, (float(reply[i + 1]) - now) / 1000))
            for i in range(1, len(reply), 2)
        )
        return page_of(listed, limit=limit, after=after)

    async def delete(self, stream_id: str) -> bool:
        """Forget a stream; True when it existed. While degraded only process memory's copy."""
        check_stream_id(stream_id)
        keys = [
            self.window_key(stream_id),
            self._live_key,
            self.alarm_key(stream_id),
            self.events_key(stream_id),
            self.recent_key(stream_id),
            self.follow_key(stream_id),
        ]
        self._pending.forget(stream_id)
        self._known.forget(self.window_key(stream_id))
        reply = await self._guarded(
            "delete", lambda: self._delete_script(keys=keys, args=[stream_id])
        )
        if reply is FAILED:
            self.fallbacks += 1
            return self._fallback.delete_now(stream_id)
        return bool(reply)

    async def live_count(self) -> int:
        """Live streams in Redis (process memory's while Redis is unreachable)."""
        reply = await self._guarded("count", lambda: self._count_script(keys=[self._live_key]))
        if reply is FAILED:
            return len(self._fallback)
        assert isinstance(reply, int)
        return reply

    async def close(self) -> None:
        """Write the queued recent scores, close the client and its pool; forget the memory
        fallback."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush_recent()
        self._fallback.clear()
        await self._close_client()

    def _slot(self) -> asyncio.Semaphore:
        """Waiting for one of the ``max_concurrent_calls`` slots is not part of the timeout:
        a burst of requests queues here instead of being taken for a Redis outage."""
        return self._slots

    def _refused(self) -> None:
        self._breaker.record_success()  # no outage; memory windows stay in use

    def _succeeded(self) -> None:
        """Close the breaker; on recovery Redis's windows are used again, memory's dropped."""
        if self._breaker.record_success():
            _log.info("Redis stream store reachable again; streams served from Redis")
        if self._fallback_used:
            self._fallback.clear()
            self._fallback_used = False
