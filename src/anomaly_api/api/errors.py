"""One error format for the whole API, the HTTP layer's own errors, and the one status table.

Every error response is ``{"error": {"code": ..., "message": ..., "details": [...]}}``.
Service errors (``anomaly_api.service.errors.ServiceError``) are free of HTTP; the errors
below are raised by the HTTP layer itself::

    ApiError
    ├── RequestBodyError
    │   ├── PayloadTooLargeError       body above Settings.max_body_bytes
    │   ├── UnsupportedMediaTypeError  Content-Type is not JSON
    │   ├── MalformedJSONError         not valid JSON (NaN and Infinity are not JSON)
    │   ├── SchemaValidationError      valid JSON of the wrong shape or types
    │   ├── BatchSizeError             more rows than Settings.max_batch_rows
    │   └── ObservationIdError         observation_id above its configured length
    ├── NotAcceptableError             no answer in a media type the Accept header allows
    ├── HeadersTooLargeError           headers above Settings.max_header_bytes
    ├── OverloadedError                past Settings.max_in_flight requests at once (503)
    └── AuthError
        ├── MissingApiKeyError         no key sent (401)
        ├── InvalidApiKeyError         a key not accepted for the route (403)
        └── AdminClosedError           an admin route, no key configured, a remote client (403)

``ERROR_TABLE`` maps each class of both families to its status and code. A 422's
``details[].loc`` is a list, as FastAPI and Pydantic write it
(``["observations", 2, "features", 0]``).

Every error the service sends is rendered here (``render_error``): by the exception
handlers, the Open Inference Protocol routes and the pure ASGI middleware alike. The
protocol's routes (under ``OIP_PREFIX``, ``/v2``) get that protocol's format,
``{"error": "<message>"}``, with the same statuses except that 422 becomes 400 (the
protocol knows no 422).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from anomaly_api.api.request_context import current_request_id
from anomaly_api.service.errors import (
    EventNotFoundError,
    InvalidFeaturesError,
    InvalidInputError,
    InvalidTimestampsError,
    ModelConflictError,
    ModelIsTimeAwareError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelReloadError,
    ModelVersionNotFoundError,
    ServiceError,
    StreamNotFoundError,
)
from anomaly_api.service.jobs import JobNotFoundError, JobQueueFullError, TrainingUnavailableError
from anomaly_api.service.jobs.store import JobStoreUnavailableError
from anomaly_api.service.streams import (
    InvalidReadingsError,
    InvalidStreamIdError,
    StreamCapacityError,
    StreamOrderError,
)

__all__ = [
    "ERROR_TABLE",
    "EXPECTED_ERRORS",
    "AdminClosedError",
    "ApiError",
    "AuthError",
    "BatchSizeError",
    "ErrorReply",
    "HeadersTooLargeError",
    "InvalidApiKeyError",
    "MalformedJSONError",
    "MissingApiKeyError",
    "NotAcceptableError",
    "ObservationIdError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RequestBodyError",
    "SchemaValidationError",
    "UnsupportedMediaTypeError",
    "dotted",
    "install_error_handlers",
    "is_oip_path",
    "render",
    "render_error",
    "reply_of",
    "send_error",
    "status_of",
]

_log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base class of the errors the HTTP layer raises itself.

    ``status`` overrides the table's (for protocols that choose it where they raise);
    ``retry_after_s`` is sent as ``Retry-After``.
    """

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        status: int | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.status = status
        self.retry_after_s = retry_after_s


class RequestBodyError(ApiError):
    """The request body cannot be read, parsed or accepted."""


class PayloadTooLargeError(RequestBodyError):
    """The body is larger than the configured limit."""


class UnsupportedMediaTypeError(RequestBodyError):
    """The body is not declared as JSON."""


class MalformedJSONError(RequestBodyError):
    """The body is not valid JSON."""


class SchemaValidationError(RequestBodyError):
    """The body is JSON but does not match the request schema."""


class BatchSizeError(RequestBodyError):
    """A batch holds more rows than ``Settings.max_batch_rows``."""


class ObservationIdError(RequestBodyError):
    """An ``observation_id`` is longer than ``Settings.max_observation_id_length``."""


class NotAcceptableError(ApiError):
    """The Accept header allows none of the media types the route answers in."""


class HeadersTooLargeError(ApiError):
    """The request's headers are larger than the configured limit."""


class OverloadedError(ApiError):
    """The service serves as many requests as it admits at once; retry later (503)."""


class AuthError(ApiError):
    """A request lacks the key a route needs."""


class MissingApiKeyError(AuthError):
    """No key was sent (401)."""


class InvalidApiKeyError(AuthError):
    """A key was sent but is not accepted here (403)."""


class AdminClosedError(AuthError):
    """An admin route asked from another host while no admin key is configured (403)."""


ERROR_TABLE: dict[type[Exception], tuple[int, str]] = {
    PayloadTooLargeError: (413, "payload_too_large"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    MalformedJSONError: (400, "invalid_json"),
    SchemaValidationError: (422, "invalid_request"),
    InvalidFeaturesError: (422, "invalid_features"),
    BatchSizeError: (422, "invalid_batch_size"),
    ObservationIdError: (422, "invalid_observation_id"),
    InvalidTimestampsError: (422, "invalid_timestamps"),
    ModelIsTimeAwareError: (422, "model_is_time_aware"),
    InvalidReadingsError: (422, "invalid_readings"),
    InvalidStreamIdError: (422, "invalid_stream_id"),
    StreamOrderError: (409, "stream_order"),
    StreamNotFoundError: (404, "stream_not_found"),
    EventNotFoundError: (404, "event_not_found"),
    StreamCapacityError: (429, "stream_store_full"),
    JobQueueFullError: (429, "training_queue_full"),
    JobNotFoundError: (404, "job_not_found"),
    JobStoreUnavailableError: (503, "job_table_unavailable"),
    TrainingUnavailableError: (503, "training_unavailable"),
    InvalidInputError: (422, "invalid_input"),
    ModelNotReadyError: (503, "model_not_ready"),
    NotAcceptableError: (406, "not_acceptable"),
    HeadersTooLargeError: (431, "headers_too_large"),
    OverloadedError: (503, "overloaded"),
    MissingApiKeyError: (401, "missing_api_key"),
    InvalidApiKeyError: (403, "invalid_api_key"),
    AdminClosedError: (403, "admin_key_not_configured"),
    ModelVersionNotFoundError: (404, "model_version_not_found"),
    ModelNotFoundError: (404, "model_not_found"),
    ModelConflictError: (409, "model_conflict"),
    ModelReloadError: (409, "model_reload_failed"),
    ServiceError: (400, "bad_request"),
    ApiError: (400, "bad_request"),
}
"""Status and error code of each error class; subclasses not listed use their parent's."""

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
CLIENT_CLOSED_REQUEST = 499
"""Status logged for a request whose client disconnected mid-body (nginx's convention)."""


def status_of(exc: ServiceError | ApiError) -> tuple[int, str]:
    """The table entry of ``exc``'s class or of its nearest listed ancestor; an
    ``ApiError`` that declares its own ``status`` keeps it."""
    status_code, code = next(ERROR_TABLE[c] for c in type(exc).__mro__ if c in ERROR_TABLE)
    own = exc.status if isinstance(exc, ApiError) else None
    return own or status_code, code


def dotted(loc: Sequence[int | str]) -> str:
    """A ``loc`` list for people: ``["observations", 2, "features", 0]`` ->
    ``observations[2].features[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "body"


OIP_PREFIX = "/v2"
"""Path prefix of the Open Inference Protocol routes (``anomaly_api.api.routes.oip``)."""


def is_oip_path(path: str) -> bool:
    """Whether ``path`` belongs to the Open Inference Protocol routes."""
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What an error answers, before it is written in one of the two formats."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] | None = None
    headers: Mapping[str, str] | None = None


_INTERNAL = ErrorReply(500, "internal_error", "internal server error")


def _retry_after(seconds: int | None) -> dict[str, str] | None:
    return None if seconds is None else {"Retry-After": str(seconds)}


def reply_of(exc: BaseException) -> ErrorReply | None:
    """The reply to ``exc``; ``None`` for an error the service did not expect (a 500)."""
    if isinstance(exc, ServiceError | ApiError):
        status_code, code = status_of(exc)
        details = exc.details if isinstance(exc, ApiError) else None
        return ErrorReply(status_code, code, exc.message, details, _retry_after(exc.retry_after_s))
    if isinstance(exc, RequestValidationError):
        details = [
            {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        message = "; ".join(f"{dotted(d['loc'])}: {d['msg']}" for d in details[:3])
        return ErrorReply(422, "invalid_request", message or "invalid request", details)
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return ErrorReply(exc.status_code, code, str(exc.detail), headers=exc.headers)
    if isinstance(exc, ClientDisconnect):
        # The client left while sending its body: nobody reads this, but it is no server error.
        message = "the client closed the connection"
        return ErrorReply(CLIENT_CLOSED_REQUEST, "client_closed_request", message)
    return None


def render(reply: ErrorReply, path: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``reply`` in the format of ``path``'s routes, with ``headers`` added to its own.

    The API's format is ``{"error": {"code", "message", "details", "request_id"}}``; under
    ``OIP_PREFIX`` it is the protocol's ``{"error": message}``, and 422 becomes 400 there.
    """
    all_headers = {**(reply.headers or {}), **(headers or {})} or None
    if is_oip_path(path):
        status_code = 400 if reply.status == 422 else reply.status
        return JSONResponse({"error": reply.message}, status_code, headers=all_headers)
    error = {"code": reply.code, "message": reply.message, "details": reply.details}
    body = {"error": error | {"request_id": current_request_id()}}
    return JSONResponse(body, status_code=reply.status, headers=all_headers)


def render_error(
    exc: BaseException, scope: Scope, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one answer to ``exc`` on the request of ``scope``; unexpected errors are logged
    and answered 500 without their trace."""
    reply = reply_of(exc)
    if reply is None:
        _log.error("unhandled error on %s %s", scope.get("method"), scope["path"], exc_info=exc)
        reply = _INTERNAL
    return render(reply, scope["path"], headers)


async def send_error(
    exc: ApiError,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer the request of ``scope`` with ``exc``, from pure ASGI middleware."""
    await render_error(exc, scope, headers)(scope, receive, send)


async def _handle(request: Request, exc: Exception) -> Response:
    return render_error(exc, request.scope)


EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ServiceError,
    ApiError,
    StarletteHTTPException,
    RequestValidationError,
    ClientDisconnect,
)
"""What a route may raise as an answer (rendered where it is raised, by Starlette's
exception middleware or by the fast path); anything else is a 500, rendered outermost."""


def install_error_handlers(app: FastAPI) -> None:
    """Route every error to the one renderer; nothing reaches the client as a trace."""
    for cls in (*EXPECTED_ERRORS, Exception):
        app.add_exception_handler(cls, _handle)
