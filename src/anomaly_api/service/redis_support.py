"""Redis plumbing the prediction cache and the stream store share.

Both fail open the same way: each call has a timeout and goes through a circuit
breaker, failures are counted and logged (throttled), and an error *reply* counts as an
error but not as an outage. ``GuardedRedisCalls`` holds that logic; each user names its
logger and messages and decides what a refused call and a recovery mean for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from anomaly_api.config import Settings

if TYPE_CHECKING:  # the cache package imports this module: no import back at load time
    from anomaly_api.service.cache.base import BreakerState
    from anomaly_api.service.cache.breaker import CircuitBreaker

T = TypeVar("T")

FAILED = object()
"""Sentinel: the call was skipped or failed."""


def describe(exc: BaseException) -> str:
    """``TimeoutError: Timeout reading from socket`` (an empty ``str`` says too little)."""
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class ThrottledWarning:
    """Logs at most one warning per ``interval_s`` on ``log``, reporting how many it held back."""

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._log = log or logging.getLogger(__name__)
        self._last = -interval_s
        self._held_back = 0

    def __call__(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._last < self.interval_s:
            self._held_back += 1
            return
        held_back, self._held_back, self._last = self._held_back, 0, now
        if held_back:
            self._log.warning(message + " (%d more since the last report)", *args, held_back)
        else:
            self._log.warning(message, *args)


def client_from_settings(settings: Settings, **options: Any) -> Redis:
    """A client with the settings' socket timeouts and at most one immediate retry, on a
    connection error only; does not connect yet. ``options`` go to ``Redis.from_url`` and
    override those defaults."""
    if not settings.redis_url:
        raise ValueError("settings.redis_url is not set")
    timeout = settings.redis_timeout_s
    defaults: dict[str, Any] = {
        "socket_timeout": timeout,
        # Never shorter than a call's: a busy event loop (hundreds of calls in flight) can
        # notice a finished connect late.
        "socket_connect_timeout": max(timeout, settings.redis_connect_timeout_s),
        "retry": Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        "health_check_interval": 0,  # a stale socket fails once; the retry reconnects
    }
    return Redis.from_url(settings.redis_url, **(defaults | options))


def breaker_from_settings(settings: Settings) -> CircuitBreaker:
    """The circuit breaker of the settings."""
    from anomaly_api.service.cache.breaker import CircuitBreaker  # here: import cycle

    return CircuitBreaker(
        failure_threshold=settings.redis_breaker_failures,
        cooldown_s=settings.redis_breaker_cooldown_s,
    )


class GuardedRedisCalls:
    """Breaker- and timeout-guarded Redis calls with counted, throttled failure logs.

    Subclasses set ``_log``, ``_label`` (``"Redis cache"``) and ``_outage_message`` (a
    format taking the call, the error and the cooldown), and implement ``_succeeded`` and
    ``_refused``; ``_slot`` may bound the calls in flight.
    """

    _log: ClassVar[logging.Logger]
    _label: ClassVar[str]
    _outage_message: ClassVar[str]

    def __init__(
        self,
        client: Redis,
        call_timeout_s: float,
        breaker: CircuitBreaker,
        log_interval_s: float,
        *,
        probe_timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._call_timeout_s = call_timeout_s
        # Off the request path (health probe, warm-up) a call may take longer: it may have to
        # open the connection (DNS, TCP, TLS, CLIENT SETINFO), which a loaded host or a TLS
        # Redis does not always do within a request's budget. A connection it opens stays in
        # the pool for the requests.
        self._probe_timeout_s = max(call_timeout_s, probe_timeout_s or 0.0)
        self._breaker = breaker
        self._warn = ThrottledWarning(log_interval_s, log=self._log)
        self.errors = 0
        self.skipped = 0

    @property
    def backend(self) -> str:
        """Always ``"redis"``."""
        return "redis"

    @property
    def breaker_state(self) -> BreakerState:
        """``closed``, ``open`` (calls skipped) or ``half_open`` (one trial call allowed)."""
        return self._breaker.state

    async def check(self) -> bool:
        """PING Redis now, past the breaker, within the probe's budget: success closes the
        breaker, failure opens it."""
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._client.ping()
        except Exception as exc:
            self._failed("PING", exc, trip=True)
            return False
        self._succeeded()
        return True

    async def _close_client(self) -> None:
        """Close the client and its pool; a failure is logged, not raised."""
        try:
            await self._client.aclose()
        except Exception as exc:
            self._log.warning("closing the %s client failed: %s", self._label, describe(exc))

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Held around each guarded call (no bound by default)."""
        return contextlib.nullcontext()

    async def _guarded(self, what: str, call: Callable[[], Awaitable[T]]) -> T | object:
        """Run ``call`` through the breaker and timeout; ``FAILED`` instead of raising."""
        if not self._breaker.allow():
            self.skipped += 1
            return FAILED
        done = False
        try:
            async with self._slot():
                async with asyncio.timeout(self._call_timeout_s):
                    result = await call()
            done = True
        except ResponseError as exc:  # Redis answered, with an error: reachable all the same
            done = True
            self.errors += 1
            self._warn("%s %s refused: %s", self._label, what, describe(exc))
            self._refused()
            return FAILED
        except Exception as exc:
            done = True
            self._failed(what, exc)
            return FAILED
        finally:
            if not done:  # cancelled by the caller: no verdict on Redis
                self._breaker.release()
        self._succeeded()
        return result

    def _failed(self, what: str, exc: Exception, *, trip: bool = False) -> None:
        """Count and log a failure; ``trip`` opens the breaker at once (failed probe)."""
        self.errors += 1
        was_closed = self._breaker.state == "closed"
        opened = self._breaker.trip() if trip else self._breaker.record_failure()
        if opened and was_closed:
            self._log.warning(self._outage_message, what, describe(exc), self._breaker.cooldown_s)
        else:
            self._warn("%s %s failed: %s", self._label, what, describe(exc))

    def _refused(self) -> None:
        """After an error reply: Redis is reachable."""
        raise NotImplementedError

    def _succeeded(self) -> None:
        """After a call that worked."""
        raise NotImplementedError
