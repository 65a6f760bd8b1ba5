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
    └── AuthError
        ├── MissingApiKeyError         no key sent (401)
        └── InvalidApiKeyError         a key not accepted for the route (403)

``ERROR_TABLE`` maps each class of both families to its status and code. A 422's
``details[].loc`` is a list, as FastAPI and Pydantic write it
(``["observations", 2, "features", 0]``).

The Open Inference Protocol routes (under ``OIP_PREFIX``, ``/v2``) answer errors in that
protocol's format instead, ``{"error": "<message>"}`` (``oip_error_response``), with the
same table's statuses except that 422 becomes 400 (the protocol knows no 422).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from anomaly_api.api.request_context import current_request_id
from anomaly_api.service.errors import (
    InvalidFeaturesError,
    InvalidInputError,
    InvalidTimestampsError,
    ModelIsTimeAwareError,
    ModelNotReadyError,
    ModelReloadError,
    ModelVersionNotFoundError,
    ServiceError,
    StreamNotFoundError,
)
from anomaly_api.service.streams import (
    InvalidReadingsError,
    InvalidStreamIdError,
    StreamCapacityError,
    StreamOrderError,
)

__all__ = [
    "ERROR_TABLE",
    "ApiError",
    "AuthError",
    "BatchSizeError",
    "HeadersTooLargeError",
    "InvalidApiKeyError",
    "MalformedJSONError",
    "MissingApiKeyError",
    "NotAcceptableError",
    "ObservationIdError",
    "PayloadTooLargeError",
    "RequestBodyError",
    "SchemaValidationError",
    "UnsupportedMediaTypeError",
    "dotted",
    "error_response",
    "install_error_handlers",
    "is_oip_path",
    "oip_error_response",
    "oip_status_of",
]

_log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base class of the errors the HTTP layer raises itself."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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


class AuthError(ApiError):
    """A request lacks the key a route needs."""


class MissingApiKeyError(AuthError):
    """No key was sent (401)."""


class InvalidApiKeyError(AuthError):
    """A key was sent but is not accepted here (403)."""


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
    StreamCapacityError: (429, "stream_store_full"),
    InvalidInputError: (422, "invalid_input"),
    ModelNotReadyError: (503, "model_not_ready"),
    NotAcceptableError: (406, "not_acceptable"),
    HeadersTooLargeError: (431, "headers_too_large"),
    MissingApiKeyError: (401, "missing_api_key"),
    InvalidApiKeyError: (403, "invalid_api_key"),
    ModelVersionNotFoundError: (404, "model_version_not_found"),
    ModelReloadError: (409, "model_reload_failed"),
    ServiceError: (400, "bad_request"),
    ApiError: (400, "bad_request"),
}
"""Status and error code of each error class; subclasses not listed use their parent's."""

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
CLIENT_CLOSED_REQUEST = 499
"""Status logged for a request whose client disconnected mid-body (nginx's convention)."""


def status_of(exc: ServiceError | ApiError) -> tuple[int, str]:
    """The table entry of ``exc``'s class or of its nearest listed ancestor."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[ServiceError]


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


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response in the API's error format."""
    error = {"code": code, "message": message, "details": details}
    body = {"error": error | {"request_id": current_request_id()}}
    return JSONResponse(body, status_code=status_code, headers=headers)


OIP_PREFIX = "/v2"
"""Path prefix of the Open Inference Protocol routes (``anomaly_api.api.routes.oip``)."""


def is_oip_path(path: str) -> bool:
    """Whether ``path`` belongs to the Open Inference Protocol routes."""
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def oip_status_of(exc: ServiceError | ApiError) -> int:
    """The status of ``exc`` on an Open Inference Protocol route (422 is 400 there)."""
    status_code, _ = status_of(exc)
    return 400 if status_code == 422 else status_code


def oip_error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error in the Open Inference Protocol's format: ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


async def _known_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError | ApiError)
    status_code, code = status_of(exc)
    details = exc.details if isinstance(exc, ApiError) else None
    retry_after = getattr(exc, "retry_after_s", None)
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return error_response(status_code, code, exc.message, details, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]
    message = "; ".join(f"{dotted(d['loc'])}: {d['msg']}" for d in details[:3])
    return error_response(422, "invalid_request", message or "invalid request", details)


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client left while sending its body: nobody reads this, but it is no server error.
    return error_response(
        CLIENT_CLOSED_REQUEST, "client_closed_request", "the client closed the connection"
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error to the API's error format; nothing reaches the client as a trace."""
    app.add_exception_handler(ServiceError, _known_error)
    app.add_exception_handler(ApiError, _known_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected_error)
