"""What the sync and async clients share: requests, retries, parsing and result types.

Nothing here does I/O. Each call is a small *exchange*: a generator that yields
``Send(request)`` or ``Sleep(seconds)`` actions and receives the outcome of each send (a
response or a transport error). ``AnomalyClient`` drives it with blocking calls and
``AsyncAnomalyClient`` with ``await``, so retries and backoff are written once.

Imports: the standard library and httpx only (no numpy, pandas or server code); orjson
is used when installed (it is with the server), for ~5x faster JSON both ways.
"""

from __future__ import annotations

import email.utils
import gc
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Final, Generic, Literal, TypeVar

import httpx

try:  # optional speed-up; the client works without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the import test's subprocess
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "AnomalyApiError",
    "AnomalyConnectionError",
    "Contribution",
    "DetectorVerdict",
    "Health",
    "ModelInfo",
    "Prediction",
    "RetryPolicy",
    "StreamAnswer",
    "StreamReadings",
    "StreamState",
    "StreamSummary",
    "WindowResult",
    "answer_columns",
]

FeatureRow = Sequence[float] | Mapping[str, float]
"""Feature values in the model's order, or keyed by feature name."""

Timestamp = datetime | str | float
"""A reading's time: a timezone-aware ``datetime``, an ISO 8601 string or epoch seconds."""

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


# --------------------------------------------------------------------------- errors


class AnomalyApiError(Exception):
    """The server answered with an error: its status, ``code``, ``message`` and request id."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details


class AnomalyConnectionError(Exception):
    """The server could not be reached, after every retry."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DetectorVerdict:
    """What one detector said: its score, its threshold and its vote."""

    score: float
    threshold: float
    vote: bool


@dataclass(frozen=True)
class Prediction:
    """The answer for one reading. ``raw`` holds the whole answer, including fields this
    client does not know yet (``extra`` lists them)."""

    observation_id: str
    is_anomaly: bool
    anomaly_score: float
    confidence: float
    model_version: str
    cached: bool
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @cached_property
    def detectors(self) -> dict[str, DetectorVerdict]:
        """Each detector's verdict, by name (built on first use)."""
        return {
            name: DetectorVerdict(
                score=float(d["score"]), threshold=float(d["threshold"]), vote=bool(d["vote"])
            )
            for name, d in self.raw["detectors"].items()
        }

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above (say ``severity`` or ``contributions``)."""
        return {k: v for k, v in self.raw.items() if k not in _PREDICTION_FIELDS}


_PREDICTION_FIELDS: Final = frozenset(
    {
        "observation_id",
        "is_anomaly",
        "anomaly_score",
        "confidence",
        "model_version",
        "detectors",
        "cached",
        "inference_ms",
    }
)


@dataclass(frozen=True)
class Health:
    """``GET /health``: ``ok``, ``degraded`` (no cache, still serving) or ``unavailable``."""

    status: str
    model_loaded: bool
    model_version: str | None
    cache_backend: str | None
    cache_ok: bool | None
    uptime_s: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelInfo:
    """``GET /model/info``: the served version, its features and detectors."""

    version: str
    feature_names: tuple[str, ...]
    detector_names: tuple[str, ...]
    created_at: str
    inference_backend: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def n_features(self) -> int:
        """How many features each row must have."""
        return len(self.feature_names)


def answer_columns(detector_names: Iterable[str]) -> list[str]:
    """Columns a scored table gains, in order (bulk scoring and ``score_frame`` agree).

    One score column per detector, named ``<detector>_score``. Later answer fields
    (severity, contributions) are added here and in ``prediction_record``.
    """
    return ["is_anomaly", "anomaly_score", "confidence", *(f"{n}_score" for n in detector_names)]


def prediction_record(prediction: Prediction, detector_names: Sequence[str]) -> list[Any]:
    """One row of ``answer_columns(detector_names)`` for a ``Prediction``."""
    return [
        prediction.is_anomaly,
        prediction.anomaly_score,
        prediction.confidence,
        *(prediction.detectors[name].score for name in detector_names),
    ]


# --------------------------------------------------------------------------- stream results


def _unknown(raw: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in known}


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a reading's anomaly (``why``: a reason, when the model has one)."""

    feature: str
    share: float
    why: str | None


@dataclass(frozen=True)
class StreamAnswer:
    """The answer for one reading of a stream (``/predict/window`` or ``/streams/...``).

    ``index`` is the reading's position in the request; ``raw`` keeps the whole answer and
    ``extra`` the fields this client does not know yet."""

    index: int
    timestamp: str
    is_anomaly: bool
    anomaly_score: float
    severity: float
    confidence: float
    warming_up: bool
    contributions: tuple[Contribution, ...]
    alarm: bool
    """The reading raised an alarm (false from servers older than the alarm field)."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _STREAM_ANSWER_FIELDS)


_STREAM_ANSWER_FIELDS: Final = frozenset(
    {
        "index",
        "timestamp",
        "is_anomaly",
        "anomaly_score",
        "severity",
        "confidence",
        "warming_up",
        "contributions",
        "alarm",
    }
)


@dataclass(frozen=True)
class WindowResult:
    """``POST /predict/window``: the answers (the last reading's, or every reading's)."""

    answers: tuple[StreamAnswer, ...]
    n_anomalies: int
    model_version: str
    model_kind: str
    window: int
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def last(self) -> StreamAnswer:
        """The answer of the newest reading."""
        return self.answers[-1]

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _WINDOW_FIELDS)


_WINDOW_FIELDS: Final = frozenset(
    {"answers", "n_anomalies", "model_version", "model_kind", "window", "inference_ms"}
)


@dataclass(frozen=True)
class StreamSummary:
    """A stream's state right after readings were appended."""

    readings_in_window: int
    window: int
    total: int
    warming_up: bool
    restarted: bool
    """``new_stream`` or ``model_changed``."""
    new_stream: bool
    model_changed: bool
    backend: str
    degraded: bool
    alarms: int
    """Alarms the stream raised since it (re)started."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StreamReadings:
    """``POST /streams/{stream_id}/readings``: one answer per appended reading."""

    stream_id: str
    answers: tuple[StreamAnswer, ...]
    n_anomalies: int
    model_version: str
    model_kind: str
    stream: StreamSummary
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _READINGS_FIELDS)


_READINGS_FIELDS: Final = frozenset(
    {
        "stream_id",
        "answers",
        "n_anomalies",
        "model_version",
        "model_kind",
        "stream",
        "inference_ms",
    }
)


@dataclass(frozen=True)
class StreamState:
    """``GET /streams/{stream_id}``: a live stream's totals, first/last timestamp, expiry."""

    stream_id: str
    total: int
    readings_in_window: int
    n_features: int
    first_timestamp: str
    last_timestamp: str
    model_version: str
    expires_in_s: float
    backend: str
    degraded: bool
    alarms: int
    """Alarms raised since the stream (re)started (the state's ``alarm.alarms``)."""
    last_alarm_timestamp: str | None
    """Timestamp of the reading of the last alarm, ISO 8601; None before the first."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _STATE_FIELDS)


_STATE_FIELDS: Final = frozenset(
    {
        "stream_id",
        "total",
        "readings_in_window",
        "n_features",
        "first_timestamp",
        "last_timestamp",
        "model_version",
        "expires_in_s",
        "backend",
        "degraded",
        "alarm",
    }
)


# --------------------------------------------------------------------------- parsing


_new_object = object.__new__


def parse_prediction(data: Mapping[str, Any]) -> Prediction:
    """A ``Prediction`` from one answer of ``/predict`` or ``/predict/batch``.

    The instance's attributes are filled in directly, the same ones ``Prediction(...)``
    sets (it has no ``__post_init__``): the frozen dataclass's ``__init__``, one
    ``object.__setattr__`` a field, took about a third of the time of building a 1,000-row
    batch's ``Prediction``s."""
    prediction: Prediction = _new_object(Prediction)
    prediction.__dict__.update(
        observation_id=str(data["observation_id"]),
        is_anomaly=bool(data["is_anomaly"]),
        anomaly_score=float(data["anomaly_score"]),
        confidence=float(data["confidence"]),
        model_version=str(data["model_version"]),
        cached=bool(data.get("cached", False)),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )
    return prediction


def parse_batch(data: Mapping[str, Any]) -> list[Prediction]:
    """The ``Prediction`` of each observation of a ``/predict/batch`` answer, in order."""
    return [parse_prediction(item) for item in data["predictions"]]


class _GcPause:
    """The state of ``gc_paused``: blocks running now, and whether to switch back on."""

    lock = threading.Lock()
    depth = 0
    resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs (nested and across threads).

    Decoding a 1,000-row answer allocates ~14,000 dicts and lists that all stay alive
    (``raw``), so the collector's passes over them while they are built find nothing to
    free; in ``predict_many`` those passes cost about as much CPU as the rest of the
    client. The collector is switched back on when the last block in any thread ends,
    and only if it was on when the first began (a program that disabled it keeps it off).
    """
    with _GcPause.lock:
        if _GcPause.depth == 0:
            _GcPause.resume = gc.isenabled()
            gc.disable()
        _GcPause.depth += 1
    try:
        yield
    finally:
        with _GcPause.lock:
            _GcPause.depth -= 1
            if _GcPause.depth == 0 and _GcPause.resume:
                gc.enable()


def read_batch(response: httpx.Response) -> list[Prediction]:
    """The ``Prediction``s of a ``/predict/batch`` response (decoded with the GC paused)."""
    with gc_paused():
        return parse_batch(parse_json(response))


def parse_health(data: Mapping[str, Any]) -> Health:
    """A ``Health`` from ``/health``."""
    cache = data.get("cache") or {}
    return Health(
        status=str(data["status"]),
        model_loaded=bool(data["model_loaded"]),
        model_version=data.get("model_version"),
        cache_backend=cache.get("backend"),
        cache_ok=cache.get("ok"),
        uptime_s=float(data.get("uptime_s", 0.0)),
        raw=data,
    )


def parse_model_info(data: Mapping[str, Any]) -> ModelInfo:
    """A ``ModelInfo`` from ``/model/info``."""
    return ModelInfo(
        version=str(data["version"]),
        feature_names=tuple(str(n) for n in data["feature_names"]),
        detector_names=tuple(str(d["name"]) for d in data["detectors"]),
        created_at=str(data.get("created_at", "")),
        inference_backend=data.get("inference_backend"),
        raw=data,
    )


def parse_stream_answer(data: Mapping[str, Any]) -> StreamAnswer:
    """A ``StreamAnswer`` from one item of a stream answer's ``answers``."""
    return StreamAnswer(
        index=int(data["index"]),
        timestamp=str(data["timestamp"]),
        is_anomaly=bool(data["is_anomaly"]),
        anomaly_score=float(data["anomaly_score"]),
        severity=float(data.get("severity", 0.0)),
        confidence=float(data["confidence"]),
        warming_up=bool(data.get("warming_up", False)),
        contributions=tuple(
            Contribution(feature=str(c["feature"]), share=float(c["share"]), why=c.get("why"))
            for c in data.get("contributions") or ()
        ),
        alarm=bool(data.get("alarm", False)),
        raw=data,
    )


def parse_window(data: Mapping[str, Any]) -> WindowResult:
    """A ``WindowResult`` from ``/predict/window``."""
    return WindowResult(
        answers=tuple(parse_stream_answer(a) for a in data["answers"]),
        n_anomalies=int(data["n_anomalies"]),
        model_version=str(data["model_version"]),
        model_kind=str(data["model_kind"]),
        window=int(data["window"]),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )


def parse_stream_readings(data: Mapping[str, Any]) -> StreamReadings:
    """A ``StreamReadings`` from ``/streams/{stream_id}/readings``."""
    summary = data["stream"]
    return StreamReadings(
        stream_id=str(data["stream_id"]),
        answers=tuple(parse_stream_answer(a) for a in data["answers"]),
        n_anomalies=int(data["n_anomalies"]),
        model_version=str(data["model_version"]),
        model_kind=str(data["model_kind"]),
        stream=StreamSummary(
            readings_in_window=int(summary["readings_in_window"]),
            window=int(summary["window"]),
            total=int(summary["total"]),
            warming_up=bool(summary["warming_up"]),
            restarted=bool(summary["restarted"]),
            new_stream=bool(summary.get("new_stream", summary["restarted"])),
            model_changed=bool(summary.get("model_changed", False)),
            backend=str(summary.get("backend", "")),
            degraded=bool(summary.get("degraded", False)),
            alarms=int(summary.get("alarms", 0)),
            raw=summary,
        ),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )


def parse_stream_state(data: Mapping[str, Any]) -> StreamState:
    """A ``StreamState`` from ``GET /streams/{stream_id}``."""
    alarm = data.get("alarm") or {}
    return StreamState(
        stream_id=str(data["stream_id"]),
        total=int(data["total"]),
        readings_in_window=int(data["readings_in_window"]),
        n_features=int(data["n_features"]),
        first_timestamp=str(data["first_timestamp"]),
        last_timestamp=str(data["last_timestamp"]),
        model_version=str(data["model_version"]),
        expires_in_s=float(data["expires_in_s"]),
        backend=str(data.get("backend", "")),
        degraded=bool(data.get("degraded", False)),
        alarms=int(alarm.get("alarms", 0)),
        last_alarm_timestamp=alarm.get("last_alarm_timestamp"),
        raw=data,
    )


def error_from(response: httpx.Response) -> AnomalyApiError:
    """The ``AnomalyApiError`` of a non-2xx response, from the API's error body if any."""
    request_id = response.headers.get("x-request-id")
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    info = body.get("error") if isinstance(body, dict) else None
    if isinstance(info, dict):
        return AnomalyApiError(
            response.status_code,
            str(info.get("code", "http_error")),
            str(info.get("message", response.reason_phrase)),
            request_id=info.get("request_id") or request_id,
            details=info.get("details"),
        )
    text = response.text.strip().splitlines()[0] if response.text.strip() else ""
    return AnomalyApiError(
        response.status_code,
        "http_error",
        text or response.reason_phrase,
        request_id=request_id,
    )


# --------------------------------------------------------------------------- requests


def observation(row: FeatureRow, observation_id: str | None = None) -> dict[str, Any]:
    """One reading as the API takes it (a list in model order, or a dict by name)."""
    features: Any = dict(row) if isinstance(row, Mapping) else list(row)
    body: dict[str, Any] = {"features": features}
    if observation_id is not None:
        body["observation_id"] = observation_id
    return body


def _features(row: FeatureRow) -> Any:
    if type(row) is list or type(row) is dict:  # as given: encoded at once, never kept
        return row
    return dict(row) if isinstance(row, Mapping) else list(row)


def batch_content(rows: Iterable[FeatureRow]) -> bytes:
    """The JSON body of ``/predict/batch`` for ``rows`` (as ``observation`` makes each)."""
    return json_content({"observations": [{"features": _features(row)} for row in rows]})


def timestamp_value(value: Timestamp) -> str | float:
    """A timestamp as the API takes it: ISO 8601 string or epoch seconds.

    Raises ``ValueError`` for a naive ``datetime`` (its zone would be a guess) and
    ``TypeError`` for anything else that is not a string or a number."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(
                f"timestamp {value.isoformat()} has no timezone; pass an aware datetime "
                "(e.g. datetime.now(timezone.utc)), an ISO string or epoch seconds"
            )
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(
        f"timestamp must be a datetime, an ISO string or epoch seconds, not {type(value).__name__}"
    )


def stream_body(
    timestamps: Sequence[Timestamp],
    readings: Sequence[FeatureRow],
    *,
    top_k: int | None = None,
    mode: str | None = None,
    alarm_policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of ``/predict/window`` (with ``mode``) or ``/streams/{id}/readings``;
    ``alarm_policy`` (``{"k", "window", "cooldown", "unit"}``) is sent as given.

    Raises ``ValueError`` when there are not as many timestamps as readings."""
    if len(timestamps) != len(readings):
        raise ValueError(
            f"{len(timestamps)} timestamps for {len(readings)} readings: give one per reading"
        )
    body: dict[str, Any] = {
        "timestamps": [timestamp_value(t) for t in timestamps],
        "readings": [dict(r) if isinstance(r, Mapping) else list(r) for r in readings],
    }
    if mode is not None:
        body["mode"] = mode
    if top_k is not None:
        body["top_k"] = top_k
    if alarm_policy is not None:
        body["alarm_policy"] = dict(alarm_policy)
    return body


def stream_path(stream_id: str, suffix: str = "") -> str:
    """``/streams/{stream_id}`` (the id percent-encoded; the server checks its syntax)."""
    if not stream_id:
        raise ValueError("stream_id must not be empty")
    return f"/streams/{urllib.parse.quote(stream_id, safe='')}{suffix}"


def json_content(body: Any) -> bytes:
    """Compact JSON bytes. NaN and infinity are refused here (stdlib) or sent as ``null``
    (orjson), which the server refuses with a 422 naming the observation. numpy floats
    (a row of a numpy array) are written as numbers by both."""
    if _orjson is not None:
        return _orjson.dumps(body, option=_orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def parse_json(response: httpx.Response) -> Any:
    """The response body as JSON."""
    if _orjson is not None:
        return _orjson.loads(response.content)
    return json.loads(response.content)


def chunked(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``rows`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError(f"max_batch_rows must be at least 1, got {size}")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# --------------------------------------------------------------------------- retries


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


# --------------------------------------------------------------------------- settings


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


T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call described without I/O: the request and how to read its answer.

    The stream helpers build these once here; each client only sends them."""

    method: str
    path: str
    body: Any
    parse: Callable[[httpx.Response], T]


def _ignore_body(response: httpx.Response) -> None:
    return None


class ClientBase:
    """State both clients keep (settings, backoff jitter, the remembered model info) and
    the request preparation they share; subclasses add the httpx client and the I/O."""

    _http: httpx.Client | httpx.AsyncClient

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)  # noqa: S311 - backoff jitter, not secrets
        self._model_info: ModelInfo | None = None

    def _http_options(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient`` (bar the transport)."""
        return {
            "base_url": self.config.base_url,
            "headers": self.config.headers(),
            "timeout": self.config.timeout(),
            "limits": self.config.limits(),
        }

    def _exchange(self, method: str, path: str, body: Any, options: dict[str, Any]) -> Exchange:
        """The exchange of one call (``options``: ``policy`` and those of ``exchange``)."""
        request = build_request(self._http, method, path, body)
        policy = options.pop("policy", self.config.retry)
        return exchange(request, policy, self._rng, **options)

    # Stream calls (409 ``stream_order`` and 404 ``stream_not_found`` are not retried;
    # 429 is, honouring Retry-After, like every call).

    def _window_call(
        self,
        timestamps: Sequence[Timestamp],
        readings: Sequence[FeatureRow],
        mode: Literal["last", "all"],
        top_k: int | None,
        alarm_policy: Mapping[str, Any] | None = None,
    ) -> Call[WindowResult]:
        body = stream_body(timestamps, readings, top_k=top_k, mode=mode, alarm_policy=alarm_policy)
        return Call("POST", "/predict/window", body, lambda r: parse_window(parse_json(r)))

    def _readings_call(
        self,
        stream_id: str,
        timestamps: Sequence[Timestamp],
        readings: Sequence[FeatureRow],
        top_k: int | None,
        alarm_policy: Mapping[str, Any] | None = None,
    ) -> Call[StreamReadings]:
        body = stream_body(timestamps, readings, top_k=top_k, alarm_policy=alarm_policy)
        path = stream_path(stream_id, "/readings")
        return Call("POST", path, body, lambda r: parse_stream_readings(parse_json(r)))

    def _state_call(self, stream_id: str) -> Call[StreamState]:
        path = stream_path(stream_id)
        return Call("GET", path, None, lambda r: parse_stream_state(parse_json(r)))

    def _reset_call(self, stream_id: str) -> Call[None]:
        return Call("DELETE", stream_path(stream_id), None, _ignore_body)


def build_request(
    client: httpx.Client | httpx.AsyncClient, method: str, path: str, body: Any = None
) -> httpx.Request:
    """A request on ``client`` (its base URL and headers), with a JSON body if any
    (``bytes``: JSON encoded already, as ``batch_content`` does)."""
    if body is None:
        return client.build_request(method, path)
    content = body if isinstance(body, bytes) else json_content(body)
    return client.build_request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )


def frame_rows(frame: Any, feature_names: Sequence[str]) -> list[list[float]]:
    """The feature columns of a pandas DataFrame as row lists in model order.

    Raises ``KeyError`` naming the first missing feature column.
    """
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise KeyError(
            f"feature column {missing[0]!r} not found; columns are {list(frame.columns)}"
        )
    values: list[list[float]] = frame[list(feature_names)].astype("float64").values.tolist()
    return values


def scored_frame(
    frame: Any, detector_names: Sequence[str], predictions: Sequence[Prediction]
) -> Any:
    """``frame`` with the answer's columns added (pandas imported lazily)."""
    import pandas as pd

    answers = pd.DataFrame(
        [prediction_record(p, detector_names) for p in predictions],
        columns=answer_columns(detector_names),
        index=frame.index,
    )
    answers["is_anomaly"] = answers["is_anomaly"].astype(bool)
    return pd.concat([frame, answers], axis=1)
