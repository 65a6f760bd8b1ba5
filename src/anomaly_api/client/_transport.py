"""How a call is sent: the settings, the retry policy and the *exchange* of one call.

Nothing here does I/O. An exchange is a generator that yields ``Send(request)`` or
``Sleep(seconds)`` actions and receives the outcome of each send (a response or a transport
error); ``AnomalyClient`` drives it with blocking calls and ``AsyncAnomalyClient`` with
``await``, so retries and backoff are written once.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Final

import httpx

from anomaly_api.client._errors import AnomalyConnectionError
from anomaly_api.client._parse import error_from

__all__ = [
    "NO_RETRY",
    "RETRY_STATUSES",
    "RETRY_TRANSPORT_ERRORS",
    "ClientConfig",
    "Exchange",
    "Outcome",
    "RetryPolicy",
    "Send",
    "Sleep",
    "exchange",
    "retry_after_seconds",
]

RETRY_STATUSES: Final = frozenset({429, 503})
"""The only statuses retried: rate limited, and not ready / overloaded."""
RETRY_TRANSPORT_ERRORS: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
"""Connection failures retried (scoring is idempotent). A read timeout is not: the
server is slow, not gone, and a retry would only add load."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, on connection errors, 429 and 503 only.

    The delay before retry ``n`` (1-based) is uniform in ``[0, min(max_delay_s,
    base_delay_s * 2**(n-1))]``; a ``Retry-After`` header, when present, is honoured
    instead (capped at ``max_retry_after_s``).
    """

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(0.0, ceiling)


NO_RETRY: Final = RetryPolicy(max_attempts=1)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class Send:
    """Action: send this request and feed back the response or the transport error."""

    request: httpx.Request


@dataclass(frozen=True)
class Sleep:
    """Action: wait this long, then feed back ``None``."""

    seconds: float


Outcome = httpx.Response | httpx.TransportError | None
Exchange = Generator[Send | Sleep, Outcome, httpx.Response]


def exchange(
    request: httpx.Request,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
    accept_statuses: frozenset[int] = frozenset(),
) -> Exchange:
    """Send ``request`` until it succeeds or the retries run out; returns the response.

    A 2xx response (or one in ``accept_statuses``) is returned; other statuses raise
    ``AnomalyApiError`` (at once, unless in ``retry_statuses``); transport errors are
    retried when listed in ``RETRY_TRANSPORT_ERRORS`` and raise ``AnomalyConnectionError``
    once the attempts are used up.
    """
    attempt = 0
    while True:
        attempt += 1
        outcome = yield Send(request)
        retry_after: float | None = None
        if isinstance(outcome, httpx.Response):
            if outcome.is_success or outcome.status_code in accept_statuses:
                return outcome
            if outcome.status_code not in retry_statuses or attempt >= policy.max_attempts:
                raise error_from(outcome)
            retry_after = retry_after_seconds(outcome.headers.get("retry-after"))
        elif isinstance(outcome, RETRY_TRANSPORT_ERRORS):
            if attempt >= policy.max_attempts:
                raise AnomalyConnectionError(
                    f"{request.method} {request.url}: {type(outcome).__name__}: {outcome} "
                    f"(after {attempt} attempts)"
                ) from outcome
        elif isinstance(outcome, httpx.TransportError):
            raise AnomalyConnectionError(
                f"{request.method} {request.url}: {type(outcome).__name__}: {outcome}"
            ) from outcome
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"unexpected outcome {outcome!r}")
        yield Sleep(policy.delay(attempt, retry_after, rng))


@dataclass(frozen=True)
class ClientConfig:
    """Everything both clients are configured with."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_batch_rows: int = 1000
    max_concurrency: int = 4
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {self.max_batch_rows}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")

    def headers(self) -> dict[str, str]:
        """Headers sent with every request."""
        headers = {"Accept": "application/json", "User-Agent": "anomaly-api-client"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        return headers

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout: ``timeout_s`` overall, ``connect_timeout_s`` to connect."""
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)

    def limits(self) -> httpx.Limits:
        """Enough pooled connections for ``max_concurrency`` batch calls."""
        return httpx.Limits(
            max_connections=max(self.max_concurrency, 10),
            max_keepalive_connections=max(self.max_concurrency, 10),
        )
