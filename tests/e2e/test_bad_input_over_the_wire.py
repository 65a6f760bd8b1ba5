"""The bad-input matrix over the wire: a real server, real HTTP, every case a clear 4xx.

``tests/api/test_validation.py`` checks the validation rules in-process; this table sends
the bad-input list through uvicorn's parser and the whole middleware stack, as a client
would, and also checks what only a real server sees (declared vs streamed body sizes,
header sizes). Every error must be in the API's one format and carry the request id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.testing import running_server
from api_testing import NORMAL

JSON = {"content-type": "application/json"}
ROW = {"features": NORMAL}


def raw(text: str | bytes) -> dict[str, Any]:
    """Send ``text`` verbatim as a JSON body."""
    return {"content": text.encode() if isinstance(text, str) else text, "headers": JSON}


def body(value: Any) -> dict[str, Any]:
    return {"json": value}


def streamed(size: int) -> dict[str, Any]:
    """A body of ``size`` bytes sent chunked, with no Content-Length."""

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < size:
            chunk = b" " * min(65536, size - sent)
            sent += len(chunk)
            yield chunk

    return {"content": chunks(), "headers": JSON}


# (case, path, request arguments, status, error code, message fragment)
CASES: list[tuple[str, str, dict[str, Any], int, str, str]] = [
    (
        "NaN",
        "/predict",
        raw('{"features": [NaN, 1, 1, 1, 1, 1, 1, 1]}'),
        400,
        "invalid_json",
        "NaN",
    ),
    (
        "+Infinity",
        "/predict",
        raw('{"features": [Infinity, 1, 1, 1, 1, 1, 1, 1]}'),
        400,
        "invalid_json",
        "Infinity",
    ),
    (
        "-Infinity",
        "/predict",
        raw('{"features": [1, -Infinity, 1, 1, 1, 1, 1, 1]}'),
        400,
        "invalid_json",
        "Infinity",
    ),
    (
        "too short",
        "/predict",
        body({"features": NORMAL[:7]}),
        422,
        "invalid_features",
        "expected 8 features, got 7",
    ),
    (
        "too long",
        "/predict",
        body({"features": [*NORMAL, 0.0]}),
        422,
        "invalid_features",
        "expected 8 features, got 9",
    ),
    (
        "string",
        "/predict",
        body({"features": ["a", *NORMAL[1:]]}),
        422,
        "invalid_request",
        "features[0]",
    ),
    (
        "null",
        "/predict",
        body({"features": [*NORMAL[:3], None, *NORMAL[4:]]}),
        422,
        "invalid_request",
        "features[3]",
    ),
    (
        "boolean",
        "/predict",
        body({"features": [True, *NORMAL[1:]]}),
        422,
        "invalid_request",
        "features[0]",
    ),
    ("nested", "/predict", body({"features": [NORMAL]}), 422, "invalid_request", "features[0]"),
    ("empty body", "/predict", raw(""), 400, "invalid_json", "not valid JSON"),
    ("invalid JSON", "/predict", raw('{"features": [1,'), 400, "invalid_json", "not valid JSON"),
    (
        "wrong content type",
        "/predict",
        {"content": json.dumps(ROW), "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
        "application/json",
    ),
    (
        "declared oversized body",
        "/predict",
        raw(b" " * 1_100_000),
        413,
        "payload_too_large",
        "limit",
    ),
    (
        "streamed oversized body",
        "/predict/batch",
        streamed(1_100_000),
        413,
        "payload_too_large",
        "limit",
    ),
    (
        "1,001 rows",
        "/predict/batch",
        body({"observations": [ROW] * 1001}),
        422,
        "invalid_batch_size",
        "at most 1000",
    ),
    (
        "empty batch",
        "/predict/batch",
        body({"observations": []}),
        422,
        "invalid_request",
        "observations",
    ),
    (
        "over-long id",
        "/predict",
        body({**ROW, "observation_id": "x" * 129}),
        422,
        "invalid_observation_id",
        "limit is 128",
    ),
    (
        "over-long unicode id",
        "/predict",
        body({**ROW, "observation_id": "é" * 129}),
        422,
        "invalid_observation_id",
        "limit is 128",
    ),
    (
        "oversized headers",
        "/predict",
        {"json": ROW, "headers": {"X-Padding": "p" * 20_000}},
        431,
        "headers_too_large",
        "limit",
    ),
]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifacts_dir: Path
) -> Iterator[httpx.Client]:
    workdir = tmp_path_factory.mktemp("bad-input")
    with (
        running_server(workdir, {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir)}) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        yield http


@pytest.mark.parametrize(
    ("case", "path", "request_args", "status", "code", "fragment"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client,
    case: str,
    path: str,
    request_args: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    args = dict(request_args)
    headers = {"X-Request-ID": f"bad-{len(case)}", **args.pop("headers", {})}
    response = client.post(path, headers=headers, **args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"] == headers["X-Request-ID"]


def test_unicode_id_and_bad_request_id_are_fine(client: httpx.Client) -> None:
    """A unicode observation_id is valid; an over-long X-Request-ID is replaced, not refused."""
    response = client.post(
        "/predict",
        json={**ROW, "observation_id": "capteur_été_東京_42"},
        headers={"X-Request-ID": "r" * 500},
    )
    assert response.status_code == 200
    assert response.json()["observation_id"] == "capteur_été_東京_42"
    assert len(response.headers["X-Request-ID"]) == 32
