"""What both clients share above the transport: the request bodies, the calls described
without I/O, and ``ClientBase`` (settings, backoff jitter, the remembered model info)."""

from __future__ import annotations

import os
import random
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar

import httpx

from anomaly_api.client._models import (
    FeatureRow,
    Job,
    ModelDetail,
    ModelInfo,
    ModelSummary,
    StreamReadings,
    StreamState,
    Timestamp,
    WindowResult,
)
from anomaly_api.client._parse import (
    json_content,
    parse_job,
    parse_json,
    parse_model_detail,
    parse_models,
    parse_stream_readings,
    parse_stream_state,
    parse_window,
)
from anomaly_api.client._transport import ClientConfig, Exchange, exchange

__all__ = [
    "Call",
    "ClientBase",
    "batch_content",
    "build_request",
    "chunked",
    "job_path",
    "model_path",
    "observation",
    "stream_body",
    "stream_path",
    "timestamp_value",
    "training_query",
    "training_upload",
]


def observation(
    row: FeatureRow, observation_id: str | None = None, top_k: int | None = None
) -> dict[str, Any]:
    """One reading as the API takes it (a list in model order, or a dict by name)."""
    features: Any = dict(row) if isinstance(row, Mapping) else list(row)
    body: dict[str, Any] = {"features": features}
    if observation_id is not None:
        body["observation_id"] = observation_id
    if top_k is not None:
        body["top_k"] = top_k
    return body


def _features(row: FeatureRow) -> Any:
    if type(row) is list or type(row) is dict:  # as given: encoded at once, never kept
        return row
    return dict(row) if isinstance(row, Mapping) else list(row)


def batch_content(rows: Iterable[FeatureRow], top_k: int | None = None) -> bytes:
    """The JSON body of ``/predict/batch`` for ``rows`` (as ``observation`` makes each)."""
    body: dict[str, Any] = {"observations": [{"features": _features(row)} for row in rows]}
    if top_k is not None:
        body["top_k"] = top_k
    return json_content(body)


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
    adapt: bool | None = None,
    follow: bool | None = None,
) -> dict[str, Any]:
    """The body of ``/predict/window`` (with ``mode``) or ``/streams/{id}/readings`` (with
    ``adapt`` and ``follow``); ``alarm_policy`` (``{"k", "window", "cooldown", "unit"}``)
    is sent as given.

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
    if adapt is not None:
        body["adapt"] = adapt
    if follow is not None:
        body["follow"] = follow
    return body


def stream_path(stream_id: str, suffix: str = "") -> str:
    """``/streams/{stream_id}`` (the id percent-encoded; the server checks its syntax)."""
    if not stream_id:
        raise ValueError("stream_id must not be empty")
    return f"/streams/{urllib.parse.quote(stream_id, safe='')}{suffix}"


def model_path(model: str | None, path: str) -> str:
    """``path`` of the served model, or of the named ``model`` (``/models/{model}{path}``)."""
    if model is None:
        return path
    if not model:
        raise ValueError("model must not be empty")
    return f"/models/{urllib.parse.quote(model, safe='')}{path}"


def chunked(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``rows`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError(f"max_batch_rows must be at least 1, got {size}")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


PARQUET: Final = "application/vnd.apache.parquet"
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})


def training_upload(data: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    """The body and ``Content-Type`` of a training upload: a CSV or Parquet file (by its
    suffix) or its bytes (Parquet by its ``PAR1`` magic, CSV otherwise). Read whole: the
    client keeps it to re-send after a 429; larger files belong in the server's training
    data directory (``path_on_server=``)."""
    if isinstance(data, bytes):
        return data, PARQUET if data.startswith(b"PAR1") else "text/csv"
    path = os.fspath(data)
    suffix = os.path.splitext(path)[1].lower()
    with open(path, "rb") as handle:
        return handle.read(), PARQUET if suffix in _PARQUET_SUFFIXES else "text/csv"


def training_query(options: Mapping[str, Any]) -> str:
    """The options of ``anomaly-api train`` as the query string of ``POST
    /models/{name}/versions`` (lists joined by commas, booleans as ``true``/``false``,
    ``None`` left out)."""
    params: dict[str, str] = {}
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            params[key] = ",".join(str(v) for v in value)
        else:
            params[key] = str(value)
    return urllib.parse.urlencode(params)


T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call described without I/O: the request and how to read its answer.

    The stream helpers build these once here; each client only sends them."""

    method: str
    path: str
    body: Any
    parse: Callable[[httpx.Response], T]
    content_type: str = "application/json"
    """Of ``body`` when it is ``bytes``."""


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
        """The exchange of one call (``options``: ``policy``, ``accept`` and those of
        ``exchange``)."""
        request = build_request(
            self._http,
            method,
            path,
            body,
            options.pop("accept", None),
            content_type=options.pop("content_type", "application/json"),
        )
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
        *,
        model: str | None = None,
    ) -> Call[WindowResult]:
        body = stream_body(timestamps, readings, top_k=top_k, mode=mode, alarm_policy=alarm_policy)
        path = model_path(model, "/predict/window")
        return Call("POST", path, body, lambda r: parse_window(parse_json(r)))

    def _readings_call(
        self,
        stream_id: str,
        timestamps: Sequence[Timestamp],
        readings: Sequence[FeatureRow],
        top_k: int | None,
        alarm_policy: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        adapt: bool | None = None,
        follow: bool | None = None,
    ) -> Call[StreamReadings]:
        body = stream_body(
            timestamps,
            readings,
            top_k=top_k,
            alarm_policy=alarm_policy,
            adapt=adapt,
            follow=follow,
        )
        path = model_path(model, stream_path(stream_id, "/readings"))
        return Call("POST", path, body, lambda r: parse_stream_readings(parse_json(r)))

    def _state_call(self, stream_id: str, model: str | None = None) -> Call[StreamState]:
        path = model_path(model, stream_path(stream_id))
        return Call("GET", path, None, lambda r: parse_stream_state(parse_json(r)))

    def _reset_call(self, stream_id: str, model: str | None = None) -> Call[None]:
        return Call("DELETE", model_path(model, stream_path(stream_id)), None, _ignore_body)

    # Models and training jobs.

    def _models_call(self) -> Call[list[ModelSummary]]:
        return Call("GET", "/models", None, lambda r: parse_models(parse_json(r)))

    def _model_call(self, name: str) -> Call[ModelDetail]:
        return Call("GET", model_path(name, ""), None, lambda r: parse_model_detail(parse_json(r)))

    def _train_call(
        self,
        model: str,
        data: str | os.PathLike[str] | bytes | None,
        path_on_server: str | None,
        synthetic: bool,
        options: Mapping[str, Any],
    ) -> Call[Job]:
        given = sum((data is not None, path_on_server is not None, synthetic))
        if given != 1:
            raise ValueError("give exactly one of data=, path_on_server= and synthetic=True")
        query = training_query(options)
        path = model_path(model, "/versions") + (f"?{query}" if query else "")
        if data is None:
            source = {"synthetic": True} if synthetic else {"path": path_on_server}
            return Call("POST", path, source, _parse_job)
        content, content_type = training_upload(data)
        return Call("POST", path, content, _parse_job, content_type)

    def _job_call(self, job_id: str, method: str = "GET") -> Call[Job]:
        return Call(method, job_path(job_id), None, _parse_job)


def _parse_job(response: httpx.Response) -> Job:
    return parse_job(parse_json(response))


def job_path(job_id: str) -> str:
    """``/jobs/{job_id}`` (the id percent-encoded)."""
    if not job_id:
        raise ValueError("job_id must not be empty")
    return f"/jobs/{urllib.parse.quote(job_id, safe='')}"


def build_request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    path: str,
    body: Any = None,
    accept: str | None = None,
    *,
    content_type: str = "application/json",
) -> httpx.Request:
    """A request on ``client`` (its base URL and headers), with a JSON body if any
    (``bytes``: sent as they are, as ``content_type``: JSON encoded already, as
    ``batch_content`` does, or a training upload) and ``accept`` as its ``Accept`` header
    when given."""
    headers = {} if accept is None else {"Accept": accept}
    if body is None:
        return client.build_request(method, path, headers=headers)
    content = body if isinstance(body, bytes) else json_content(body)
    headers["Content-Type"] = content_type if isinstance(body, bytes) else "application/json"
    return client.build_request(method, path, content=content, headers=headers)
