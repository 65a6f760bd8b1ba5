"""Every kind of bad input gets a clear 4xx in the one error format, never a 500."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from anomaly_api.config import Settings
from api_testing import NORMAL, assert_error, serve_app

JSON = {"content-type": "application/json"}


def raw(text: str) -> dict[str, Any]:
    """Request arguments sending ``text`` verbatim as a JSON body."""
    return {"content": text.encode(), "headers": JSON}


def features(values: Any) -> dict[str, Any]:
    return {"json": {"features": values}}


BAD_PREDICT_BODIES: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (case, request arguments, status, error code, message fragment)
    ("too few", features(NORMAL[:7]), 422, "invalid_features", "expected 8 features, got 7"),
    ("too many", features([*NORMAL, 1.0]), 422, "invalid_features", "expected 8 features, got 9"),
    ("empty", features([]), 422, "invalid_features", "expected 8 features, got 0"),
    ("NaN token", raw('{"features": [NaN, 1, 1, 1, 1, 1, 1, 1]}'), 400, "invalid_json", "NaN"),
    ("Infinity", raw('{"features": [Infinity, 1, 1, 1, 1, 1, 1, 1]}'), 400, "invalid_json", "NaN"),
    ("-Infinity", raw('{"features": [1, -Infinity, 1, 1, 1, 1, 1, 1]}'), 400, "invalid_json", ""),
    ("overflow", raw('{"features": [1e999, 1, 1, 1, 1, 1, 1, 1]}'), 400, "invalid_json", "infin"),
    ("string", features(["1.5", *NORMAL[1:]]), 422, "invalid_request", "features[0]"),
    ("null", features([None, *NORMAL[1:]]), 422, "invalid_request", "features[0]"),
    ("boolean", features([*NORMAL[:7], True]), 422, "invalid_request", "features[7]"),
    ("nested", features([[1.0], *NORMAL[1:]]), 422, "invalid_request", "features[0]"),
    ("scalar", features(3.0), 422, "invalid_request", "array of numbers or an object"),
    ("features null", features(None), 422, "invalid_request", "features"),
    ("missing features", {"json": {"observation_id": "x"}}, 422, "invalid_request", "features"),
    ("unknown field", {"json": {"features": NORMAL, "extra": 1}}, 422, "invalid_request", "extra"),
    ("not an object", {"json": [NORMAL]}, 422, "invalid_request", "body"),
    ("unknown names", features({"f0": 1, "bogus": 2}), 422, "invalid_features", "'bogus'"),
    (
        "missing names",
        features({f"f{i}": 1.0 for i in range(7)}),
        422,
        "invalid_features",
        "missing feature names ['f7']",
    ),
    (
        "named boolean",
        features({**{f"f{i}": 1.0 for i in range(7)}, "f7": False}),
        422,
        "invalid_request",
        "features.f7",
    ),
    (
        "id too long",
        {"json": {"features": NORMAL, "observation_id": "x" * 129}},
        422,
        "invalid_observation_id",
        "limit is 128",
    ),
    (
        "id empty",
        {"json": {"features": NORMAL, "observation_id": ""}},
        422,
        "invalid_request",
        "observation_id",
    ),
    (
        "id number",
        {"json": {"features": NORMAL, "observation_id": 42}},
        422,
        "invalid_request",
        "observation_id",
    ),
    ("invalid JSON", raw('{"features": [1, 2'), 400, "invalid_json", "not valid JSON"),
    ("empty body", raw(""), 400, "invalid_json", "not valid JSON"),
    ("not UTF-8", {"content": b'{"features": "\xff"}', "headers": JSON}, 400, "invalid_json", ""),
    (
        "text/plain",
        {
            "content": json.dumps({"features": NORMAL}).encode(),
            "headers": {"content-type": "text/plain"},
        },
        415,
        "unsupported_media_type",
        "application/json",
    ),
    ("form", {"data": {"features": "1"}}, 415, "unsupported_media_type", ""),
    (
        "no content type",
        {"content": json.dumps({"features": NORMAL}).encode()},
        415,
        "unsupported_media_type",
        "",
    ),
]


def observations(rows: list[Any]) -> dict[str, Any]:
    return {"json": {"observations": rows}}


BAD_BATCH_BODIES: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("empty batch", observations([]), 422, "invalid_request", "at least 1"),
    (
        "over the cap",
        observations([{"features": NORMAL}] * 1001),
        422,
        "invalid_batch_size",
        "at most 1000 observations, got 1001",
    ),
    (
        "bad row",
        observations([{"features": NORMAL}, {"features": NORMAL[:3]}]),
        422,
        "invalid_features",
        "observations[1]: expected 8 features, got 3",
    ),
    ("NaN row", raw('{"observations": [{"features": [NaN]}]}'), 400, "invalid_json", "NaN"),
    ("null row", observations([None]), 422, "invalid_request", "observations[0]"),
    (
        "bool in row",
        observations([{"features": [True] * 8}]),
        422,
        "invalid_request",
        "observations[0].features[0]",
    ),
    (
        "long id in row",
        observations([{"features": NORMAL, "observation_id": "y" * 200}]),
        422,
        "invalid_observation_id",
        "observations[0].observation_id",
    ),
    (
        "observations not a list",
        {"json": {"observations": {"features": NORMAL}}},
        422,
        "invalid_request",
        "observations",
    ),
    (
        "single body sent to batch",
        {"json": {"features": NORMAL}},
        422,
        "invalid_request",
        "observations",
    ),
]


BAD_BODIES = [("/predict", *case) for case in BAD_PREDICT_BODIES] + [
    ("/predict/batch", *case) for case in BAD_BATCH_BODIES
]


@pytest.mark.parametrize(
    ("path", "case", "request_args", "status", "code", "fragment"),
    BAD_BODIES,
    ids=[f"{path}:{case}" for path, case, *_ in BAD_BODIES],
)
@pytest.mark.asyncio(loop_scope="session")
async def test_bad_body(
    shared_client: httpx.AsyncClient,
    path: str,
    case: str,
    request_args: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    response = await shared_client.post(path, **request_args)
    assert_error(response, status, code, fragment)


async def test_batch_at_the_cap_is_accepted(client: httpx.AsyncClient) -> None:
    rows = [{"features": [0.001 * i, *NORMAL[1:]]} for i in range(1000)]
    response = await client.post("/predict/batch", json={"observations": rows})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1000


async def test_caps_come_from_settings(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_batch_rows": 2, "max_observation_id_length": 4})
    async with serve_app(settings) as http:
        three = {"observations": [{"features": NORMAL}] * 3}
        assert_error(
            await http.post("/predict/batch", json=three), 422, "invalid_batch_size", "at most 2"
        )
        long_id = {"features": NORMAL, "observation_id": "abcde"}
        assert_error(
            await http.post("/predict", json=long_id), 422, "invalid_observation_id", "limit is 4"
        )
        ok = await http.post("/predict", json={"features": NORMAL, "observation_id": "abcd"})
        assert ok.status_code == 200


async def test_unicode_observation_id_round_trips(client: httpx.AsyncClient) -> None:
    oid = "capteur_é_🌡️_42"
    response = await client.post("/predict", json={"features": NORMAL, "observation_id": oid})
    assert response.status_code == 200, response.text
    assert response.json()["observation_id"] == oid


EXTREME_ROWS = {
    "largest accepted": [1e150] * 8,
    "most negative accepted": [-1e150] * 8,
    "mixed signs": [1e150, -1e150] * 4,
    "subnormal": [5e-324] * 8,
    "zeros": [0.0] * 8,
}


@pytest.mark.parametrize("backend", ["sklearn", "fast", "numpy"])
@pytest.mark.parametrize("row", list(EXTREME_ROWS.values()), ids=list(EXTREME_ROWS))
async def test_extreme_accepted_values_score_alike_on_every_backend(
    settings: Settings, backend: str, row: list[float]
) -> None:
    """Magnitudes up to 1e150 stay finite inside every scorer; the answer is finite JSON."""
    settings = settings.model_copy(update={"inference_backend": backend})
    async with serve_app(settings) as http:
        response = await http.post("/predict", json={"features": row})
    assert response.status_code == 200, response.text
    body = response.json()
    assert math.isfinite(body["anomaly_score"])
    assert all(math.isfinite(d["score"]) for d in body["detectors"].values())
    assert body["is_anomaly"] is (abs(row[0]) > 1e100)


@pytest.mark.parametrize("value", [1.0000001e150, -1e151, 1e308, -1.7976931348623157e308])
@pytest.mark.asyncio(loop_scope="session")
async def test_magnitudes_beyond_the_limit_are_refused(
    shared_client: httpx.AsyncClient, value: float
) -> None:
    response = await shared_client.post("/predict", json={"features": [value, *NORMAL[1:]]})
    assert_error(response, 422, "invalid_request", "features[0]: Input should be")


@pytest.mark.asyncio(loop_scope="session")
async def test_both_422_paths_write_loc_as_a_list(shared_client: httpx.AsyncClient) -> None:
    """The body's schema errors and FastAPI's own (a query parameter) share one ``loc`` shape."""
    body = {"observations": [{"features": NORMAL}, {"features": [*NORMAL[:7], True]}]}
    response = await shared_client.post("/predict/batch", json=body)
    assert_error(response, 422, "invalid_request", "observations[1].features[7]")
    assert response.json()["error"]["details"][0]["loc"] == ["observations", 1, "features", 7]

    response = await shared_client.post("/admin/reload", params={"version": "../etc"})
    assert_error(response, 422, "invalid_request", "query.version")
    assert response.json()["error"]["details"][0]["loc"] == ["query", "version"]
