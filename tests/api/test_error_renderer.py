"""The one error renderer: every kind of error, in the API's format and in the Open
Inference Protocol's, byte for byte."""

from __future__ import annotations

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from anomaly_api.api.errors import (
    HeadersTooLargeError,
    MissingApiKeyError,
    SchemaValidationError,
    render_error,
)
from anomaly_api.api.oip_protocol import OipError
from anomaly_api.service.errors import InvalidFeaturesError, ModelNotReadyError
from anomaly_api.service.streams import StreamCapacityError


def scope(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


_LOC = [{"loc": ["top_k"], "msg": "too big"}]
_VALIDATION = RequestValidationError([{"loc": ("body", "x"), "msg": "bad", "type": "t"}])
CASES: list[tuple[Exception, int, bytes, int, bytes]] = [
    # exception, REST status, REST body, OIP status, OIP body
    (
        InvalidFeaturesError("expected 8 features"),
        422,
        b'{"error":{"code":"invalid_features","message":"expected 8 features",'
        b'"details":null,"request_id":null}}',
        400,
        b'{"error":"expected 8 features"}',
    ),
    (
        SchemaValidationError("top_k: too big", _LOC),
        422,
        b'{"error":{"code":"invalid_request","message":"top_k: too big",'
        b'"details":[{"loc":["top_k"],"msg":"too big"}],"request_id":null}}',
        400,
        b'{"error":"top_k: too big"}',
    ),
    (
        ModelNotReadyError("no model is loaded"),
        503,
        b'{"error":{"code":"model_not_ready","message":"no model is loaded",'
        b'"details":null,"request_id":null}}',
        503,
        b'{"error":"no model is loaded"}',
    ),
    (
        MissingApiKeyError("missing API key"),
        401,
        b'{"error":{"code":"missing_api_key","message":"missing API key",'
        b'"details":null,"request_id":null}}',
        401,
        b'{"error":"missing API key"}',
    ),
    (
        OipError("unknown model", status=404),
        404,
        b'{"error":{"code":"bad_request","message":"unknown model",'
        b'"details":null,"request_id":null}}',
        404,
        b'{"error":"unknown model"}',
    ),
    (
        _VALIDATION,
        422,
        b'{"error":{"code":"invalid_request","message":"body.x: bad",'
        b'"details":[{"loc":["body","x"],"msg":"bad"}],"request_id":null}}',
        400,
        b'{"error":"body.x: bad"}',
    ),
    (
        HTTPException(405, "Method Not Allowed"),
        405,
        b'{"error":{"code":"method_not_allowed","message":"Method Not Allowed",'
        b'"details":null,"request_id":null}}',
        405,
        b'{"error":"Method Not Allowed"}',
    ),
    (
        ClientDisconnect(),
        499,
        b'{"error":{"code":"client_closed_request","message":'
        b'"the client closed the connection","details":null,"request_id":null}}',
        499,
        b'{"error":"the client closed the connection"}',
    ),
    (
        RuntimeError("secret detail"),
        500,
        b'{"error":{"code":"internal_error","message":"internal server error",'
        b'"details":null,"request_id":null}}',
        500,
        b'{"error":"internal server error"}',
    ),
]


@pytest.mark.parametrize(("exc", "status", "body", "oip_status", "oip_body"), CASES)
def test_each_error_in_both_formats(
    exc: Exception, status: int, body: bytes, oip_status: int, oip_body: bytes
) -> None:
    rest = render_error(exc, scope("/predict"))
    assert (rest.status_code, rest.body) == (status, body)
    oip = render_error(exc, scope("/v2/models/anomaly/infer"))
    assert (oip.status_code, oip.body) == (oip_status, oip_body)
    assert b"secret" not in rest.body + oip.body


@pytest.mark.parametrize("path", ["/streams/a/readings", "/v2/models/anomaly/infer"])
def test_retry_after_is_a_declared_field_sent_in_both_formats(path: str) -> None:
    full = render_error(StreamCapacityError(3, retry_after_s=7), scope(path))
    assert (full.status_code, full.headers["retry-after"]) == (429, "7")
    assert "retry-after" not in render_error(StreamCapacityError(3), scope(path)).headers


def test_extra_headers_join_the_errors_own() -> None:
    exc = HeadersTooLargeError("too large", retry_after_s=1)
    response = render_error(exc, scope("/predict"), {"Connection": "close"})
    assert response.status_code == 431
    assert (response.headers["retry-after"], response.headers["connection"]) == ("1", "close")


async def test_a_method_the_protocol_lacks_answers_in_its_format(
    client: httpx.AsyncClient,
) -> None:
    """Routed errors outside a route's handler (405) are rendered by path too."""
    response = await client.post("/v2")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}
    assert "GET" in response.headers["allow"]
