"""Every replica follows an admin swap: announcements over Redis pub/sub.

A replica that swapped its model because of an admin call (a threshold revision, a
reload) *announces* the version: one MULTI/EXEC that SETs the key ``<prefix>announced``
and PUBLISHes on the channel ``<prefix>revisions`` (``revision_prefix``). Every replica
subscribes in the lifespan and loads an announced version from its own artifact
directory through its ``ModelReloader``: the same verified, atomic swap as a reload, so a
version it cannot load (missing, tampered) leaves its model serving, logged and counted.

A named model's alias move (``POST /models/{name}/aliases/production``, a rollback) is
published as an announcement with a ``model`` field (the key is not set): each replica
hands it to ``on_model`` (the fleet drops its loaded copy, so the next request loads the
new production version from the shared artifact directory); ``default``'s moves are
announced as a swap like any other.

Messages are handled one at a time, in the channel's order, and a version already served
is ignored (the announcer's own message, normally). Following every message in order,
its own included, is what makes the replicas agree when two announce at once: all end on
the one published last.

On every (re)subscription a replica reads the key and follows it, so one that was down or
cut off catches up; unless the version it serves was created after that announcement (a
version trained or tuned since, loaded at start, is not undone by an old key). An
announcement Redis did not take is kept and sent again (every ``revision_retry_s`` and on
resubscription) unless a newer one is seen first. Redis down never fails the admin call:
the swap is local and the answer says the announcement did not go out. Subscribing is
retried every ``revision_retry_s``; an idle subscription is PINGed each period, so a Redis
that stopped answering is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from anomaly_api.artifacts import ArtifactError, validate_version_name
from anomaly_api.config import Settings
from anomaly_api.registry import DEFAULT_MODEL, validate_model_name
from anomaly_api.service.cache.breaker import CircuitBreaker
from anomaly_api.service.errors import ModelReloadError
from anomaly_api.service.redis_support import (
    FAILED,
    GuardedRedisCalls,
    breaker_from_settings,
    client_from_settings,
    describe,
)
from anomaly_api.service.reloader import ModelReloader

__all__ = [
    "NOT_SHARED",
    "AnnounceResult",
    "Announcement",
    "RevisionChannel",
    "RevisionResult",
    "announce_model",
    "announce_swap",
]

_log = logging.getLogger(__name__)

RevisionResult = Literal["followed", "failed", "ignored", "malformed"]
"""What a replica did with one message: loaded it, could not load it (still serving its
model), already served it, or could not read it."""

_MAX_MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class Announcement:
    """One announced version: who announced it and when (Unix seconds, the announcer's clock)."""

    version: str
    origin: str
    at: float
    model: str | None = None
    """A named model whose production alias moved to ``version`` (None: the served model)."""

    def encode(self) -> bytes:
        """The JSON message."""
        body: dict[str, Any] = {"version": self.version, "origin": self.origin, "at": self.at}
        if self.model is not None:
            body["model"] = self.model
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: object) -> Announcement | None:
        """The announcement in ``raw``, or ``None`` when it is not a well-formed one."""
        try:
            if not isinstance(raw, bytes | str) or len(raw) > _MAX_MESSAGE_BYTES:
                raise ValueError("not a short text")
            body = json.loads(raw)
            version, origin, at = body["version"], body["origin"], body["at"]
            if not (isinstance(version, str) and isinstance(origin, str)):
                raise ValueError("version and origin must be strings")
            if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
                raise ValueError("at must be a finite number")
            validate_version_name(version)  # never a path out of the artifact directory
            model = body.get("model")
            if model is not None:
                validate_model_name(model)
        except (ValueError, TypeError, KeyError, ArtifactError):
            return None
        return cls(version, origin, float(at), model)


@dataclass(frozen=True)
class AnnounceResult:
    """Whether an announcement went out, in words for the admin answer."""

    sent: bool
    detail: str


NOT_SHARED = AnnounceResult(
    False,
    "not announced: no REDIS_URL, so only this replica serves it; reload each other replica "
    "(SIGHUP, or POST /admin/reload?version=...)",
)


async def announce_swap(channel: RevisionChannel | None, version: str) -> AnnounceResult:
    """Announce an admin swap on ``channel``; without Redis (``None``) say it stays local."""
    return NOT_SHARED if channel is None else await channel.announce(version)


async def announce_model(
    channel: RevisionChannel | None, name: str, version: str
) -> AnnounceResult:
    """Announce that model ``name``'s production alias now names ``version``."""
    if name == DEFAULT_MODEL:
        return await announce_swap(channel, version)
    if channel is None:
        return AnnounceResult(
            False,
            "not announced: no REDIS_URL; another replica serves the new version once it "
            f"loads model {name!r} again (after a restart, or once it unloaded it)",
        )
    return await channel.announce_model(name, version)


class RevisionChannel(GuardedRedisCalls):
    """Announces this replica's admin swaps and follows the other replicas' announcements.

    Attributes
    ----------
    replica_id : str
        This process's id in the messages it sends.
    subscribed : bool
        Whether the subscription is live now.
    pending : Announcement or None
        An announcement Redis did not take yet (sent again until it goes or is superseded).
    """

    _log = _log
    _label = "Redis revision channel"
    _outage_message = "Redis revision channel failing (%s: %s); not announcing, next try in %.1f s"

    def __init__(
        self,
        client: Redis,
        subscriber: Redis,
        reloader: ModelReloader,
        *,
        prefix: str,
        call_timeout_s: float,
        retry_s: float,
        breaker: CircuitBreaker,
        on_result: Callable[[RevisionResult], None] | None = None,
        on_announce: Callable[[bool], None] | None = None,
        log_interval_s: float = 30.0,
        probe_timeout_s: float | None = None,
    ) -> None:
        """``client`` announces (guarded); ``subscriber`` listens and must not retry by
        itself, so that a lost connection comes back through a resubscription (and its
        catch-up). ``on_result`` gets the result of each message, ``on_announce`` whether
        each announcement went out (metrics)."""
        super().__init__(
            client, call_timeout_s, breaker, log_interval_s, probe_timeout_s=probe_timeout_s
        )
        self._subscriber = subscriber
        self._reloader = reloader
        self.channel = f"{prefix}revisions"
        self.key = f"{prefix}announced"
        self._retry_s = retry_s
        self._on_result = on_result
        self._on_announce = on_announce
        self.replica_id = uuid.uuid4().hex[:12]
        self.subscribed = False
        self.pending: Announcement | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.on_model: Callable[[str], Awaitable[None]] | None = None
        """Follows a named model's alias move (the fleet's ``follow_aliases``)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        reloader: ModelReloader,
        on_result: Callable[[RevisionResult], None] | None = None,
        on_announce: Callable[[bool], None] | None = None,
    ) -> RevisionChannel:
        """Clients with the settings' timeouts and breaker; nothing connects yet."""
        no_retry = Retry(NoBackoff(), retries=0, supported_errors=(RedisConnectionError,))
        return cls(
            client_from_settings(settings),
            client_from_settings(settings, retry=no_retry),
            reloader,
            prefix=settings.revision_prefix,
            call_timeout_s=2 * settings.redis_timeout_s,
            retry_s=settings.revision_retry_s,
            breaker=breaker_from_settings(settings),
            on_result=on_result,
            on_announce=on_announce,
            probe_timeout_s=settings.redis_connect_timeout_s,
        )

    # --- announcing ----------------------------------------------------------------------

    async def announce(self, version: str) -> AnnounceResult:
        """Tell every replica to serve ``version`` (this one already does); never raises."""
        announcement = Announcement(version, self.replica_id, time.time())
        receivers = await self._send(announcement)
        if self._on_announce is not None:
            self._on_announce(receivers is not None)
        if receivers is None:
            self.pending = announcement
            _log.warning(
                "announcement of %s did not go out; other replicas keep their model until "
                "it does (retried every %.1f s) or each reloads",
                version,
                self._retry_s,
                extra={"model_version": version, "channel": self.channel},
            )
            return AnnounceResult(
                False,
                f"not announced: Redis unavailable; other replicas keep their model until "
                f"this replica can send it (retried every {self._retry_s:g} s), or reload "
                f"each: POST /admin/reload?version={version}, or SIGHUP where LATEST names it",
            )
        self.pending = None
        return AnnounceResult(True, f"announced on {self.channel} to {receivers} subscriber(s)")

    async def announce_model(self, name: str, version: str) -> AnnounceResult:
        """Tell every replica that model ``name`` now serves ``version``; never raises.

        Published only (the key keeps the served model's last announcement): a replica
        that missed it resolves the alias again whenever it next loads the model."""
        payload = Announcement(version, self.replica_id, time.time(), name).encode()
        receivers = await self._guarded(
            "PUBLISH", lambda: self._client.publish(self.channel, payload)
        )
        if self._on_announce is not None:
            self._on_announce(receivers is not FAILED)
        if receivers is FAILED:
            return AnnounceResult(
                False,
                f"not announced: Redis unavailable; other replicas serve model {name!r}'s "
                "new production version once they load it again",
            )
        return AnnounceResult(True, f"announced on {self.channel} to {receivers} subscriber(s)")

    async def _send(self, announcement: Announcement) -> int | None:
        payload = announcement.encode()

        async def set_and_publish() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self.key, payload)
                pipe.publish(self.channel, payload)
                results: list[Any] = await pipe.execute()
            return int(results[1])

        receivers = await self._guarded("SET+PUBLISH", set_and_publish)
        return None if receivers is FAILED else int(receivers)  # type: ignore[call-overload]

    async def _send_pending(self) -> None:
        pending = self.pending
        if pending is None:
            return
        served = self._reloader.runtime.predictor
        if served is None or served.version != pending.version:
            self.pending = None  # swapped again since (SIGHUP): announce nothing stale
            return
        if await self._send(pending) is not None:
            if self.pending is pending:
                self.pending = None
            _log.info("announcement of %s sent late", pending.version)

    # --- following -----------------------------------------------------------------------

    async def handle(self, raw: object) -> RevisionResult:
        """Follow the announcement in ``raw`` (one message of the channel or the key)."""
        announcement = Announcement.decode(raw)
        if announcement is None:
            shown = raw[:120] if isinstance(raw, bytes | str) else type(raw).__name__
            self._warn("revision message ignored, not an announcement: %r", shown)
            return self._result("malformed")
        if announcement.model is not None:
            if self.on_model is not None:
                await self.on_model(announcement.model)
            return self._result("followed")
        pending = self.pending
        if pending is not None and announcement.at >= pending.at:
            self.pending = None  # a newer announcement supersedes the unsent one
        served = self._reloader.runtime.predictor
        if served is not None and served.version == announcement.version:
            return self._result("ignored")
        try:
            result = await self._reloader.reload(announcement.version)
        except ModelReloadError as exc:
            _log.error(
                "announced version %s not followed: %s",
                announcement.version,
                exc.message,
                extra={"model_version": announcement.version, "origin": announcement.origin},
            )
            return self._result("failed")
        _log.info(
            "followed the announced version %s",
            result.model_version,
            extra={"previous_version": result.previous_version, "origin": announcement.origin},
        )
        return self._result("followed")

    def _result(self, result: RevisionResult) -> RevisionResult:
        if self._on_result is not None:
            self._on_result(result)
        return result

    async def _catch_up(self) -> None:
        """After (re)subscribing: send an unsent announcement that is newer than the key's,
        else follow the key, unless it is older than the version served (created later:
        a version trained or tuned since, loaded at start, is not undone by a stale key)."""
        raw = await self._guarded("GET", lambda: self._client.get(self.key))
        if raw is FAILED:
            return
        last = Announcement.decode(raw) if raw is not None else None
        pending = self.pending
        if pending is not None and (last is None or pending.at > last.at):
            await self._send_pending()
            return
        served = self._reloader.runtime.predictor
        if last is not None and served is not None and served.version != last.version:
            created = served.manifest.created_at.timestamp()
            if created > last.at:
                _log.info(
                    "last announcement (%s) is older than the version served (%s): kept",
                    last.version,
                    served.version,
                )
                self._result("ignored")
                return
        if raw is not None:
            await self.handle(raw)

    async def run(self) -> None:
        """Subscribe, catch up and follow, for ever; a lost subscription is retried every
        ``retry_s`` (cancel the task to stop)."""
        while not self._closing:
            try:
                await self._listen()
            except Exception as exc:  # Redis gone or stalled: try again later
                self._warn(
                    "%s: subscription lost (%s); retrying every %.1f s",
                    self._label,
                    describe(exc),
                    self._retry_s,
                )
            await asyncio.sleep(self._retry_s)

    async def _listen(self) -> None:
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(self._probe_timeout_s):  # opens the connection
                await pubsub.subscribe(self.channel)
            self.subscribed = True
            self._succeeded()
            _log.info("subscribed to %s", self.channel, extra={"replica_id": self.replica_id})
            await self._catch_up()
            awaiting_pong = False
            while not self._closing:
                message = await pubsub.get_message(timeout=self._retry_s)
                if message is None:  # a quiet period: is Redis still there?
                    if awaiting_pong:
                        raise RedisConnectionError("no answer to PING")
                    async with asyncio.timeout(self._probe_timeout_s):
                        await pubsub.ping()
                    awaiting_pong = True
                    await self._send_pending()
                    continue
                awaiting_pong = False
                if message.get("type") == "message":
                    await self.handle(message.get("data"))
        finally:
            self.subscribed = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start following in a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        """Stop following (within about 5 s) and close both clients."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            # redis-py can swallow a cancellation that lands while it connects: send it
            # again until the task ends; the loops also stop on ``_closing``.
            for _ in range(50):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=0.1)
                if done:
                    with contextlib.suppress(asyncio.CancelledError):
                        task.result()
                    break
            else:
                _log.warning("the revision subscriber did not stop in time")
        await self._close_client()
        try:
            await self._subscriber.aclose()
        except Exception as exc:
            _log.warning("closing the revision subscriber failed: %s", describe(exc))

    def _refused(self) -> None:
        self._succeeded()

    def _succeeded(self) -> None:
        if self._breaker.record_success():
            _log.info("Redis revision channel reachable again")
