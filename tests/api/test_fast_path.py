"""The fast path answers the hot routes exactly as the FastAPI routes do.

Every request below is sent to two apps built from the same settings, one with the fast
path (``anomaly_api.api.fast_path``) and one without it (its middleware removed before the
app starts); status, headers and body must be the same bytes, and so must the HTTP
metrics and the access log the requests leave behind. The exceptions are what differs on
every call: the answer's ``inference_ms`` (a time), the observation ids made for
readings sent without one and the epoch in a stream's event ids (random); their digits,
and so the ``content-length``, are replaced after the length is checked against the body.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import orjson
import pytest
from fastapi import FastAPI

from anomaly_api import registry
from anomaly_api.api.app import create_app
from anomaly_api.api.deps import get_batch_call, get_predict_call
from anomaly_api.api.fast_path import FAST_ROUTES, FastPathMiddleware
from anomaly_api.api.fast_streams import STREAM_ROUTES
from anomaly_api.api.security import require_api_key
from anomaly_api.config import Settings
from api_testing import ANOMALOUS, NORMAL, lifespan, make_settings, samples, stream_backend
from factories import fit_tiny_artifact

Case = tuple[str, str, dict[str, str], bytes]
Exchange = tuple[int, list[tuple[bytes, bytes]], bytes]

JSON = {"content-type": "application/json"}
BODY_LIMIT = 4096
TENSORS = "application/vnd.anomaly-api.tensors+json"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _rows(*features: Any, **extra: Any) -> bytes:
    return _json({"observations": [{"features": f} for f in features], **extra})


OPEN_CASES: list[Case] = [
    ("POST", "/predict", JSON, _json({"features": NORMAL, "observation_id": "s1"})),
    ("POST", "/predict", JSON, _json({"features": ANOMALOUS})),
    ("POST", "/predict", JSON, _json({"features": ANOMALOUS})),  # a cache hit
    ("POST", "/predict", JSON, _json({"features": {f"f{i}": v for i, v in enumerate(NORMAL)}})),
    ("POST", "/predict", JSON, _json({"features": ANOMALOUS, "top_k": 3})),
    ("POST", "/predict", JSON, _json({"features": ANOMALOUS, "top_k": 9})),  # > 8 features
    ("POST", "/predict", JSON, _json({"features": ANOMALOUS, "top_k": 0})),
    ("POST", "/predict", JSON, _json({"features": NORMAL[:5]})),
    ("POST", "/predict", JSON, _json({"features": {"f0": 1.0}})),
    ("POST", "/predict", JSON, _json({"features": "eight"})),
    ("POST", "/predict", JSON, _json({"features": NORMAL, "observation_id": "x" * 500})),
    ("POST", "/predict", JSON, b'{"features": [NaN, 1, 2, 3, 4, 5, 6, 7]}'),
    ("POST", "/predict", JSON, b'{"features": [1, 2'),
    ("POST", "/predict", JSON, b""),
    ("POST", "/predict", {"content-type": "text/plain"}, _json({"features": NORMAL})),
    ("POST", "/predict", {}, _json({"features": NORMAL})),
    ("POST", "/predict", JSON, _json({"features": NORMAL, "pad": "x" * BODY_LIMIT})),  # 413
    ("POST", "/predict/batch", JSON, _rows(NORMAL, ANOMALOUS)),
    ("POST", "/predict/batch", JSON, _rows(NORMAL, ANOMALOUS, top_k=2)),
    ("POST", "/predict/batch", JSON, _rows(NORMAL, {f"f{i}": v for i, v in enumerate(NORMAL)})),
    ("POST", "/predict/batch", JSON, _rows(NORMAL, NORMAL[:3])),
    ("POST", "/predict/batch", JSON, _rows(NORMAL, top_k=20)),
    ("POST", "/predict/batch", JSON, _rows(*[NORMAL] * 6)),  # above max_batch_rows
    ("POST", "/predict/batch", JSON, _json({"observations": []})),
    ("POST", "/predict/batch", {**JSON, "accept": TENSORS}, _rows(NORMAL, ANOMALOUS)),
    ("POST", "/predict/batch", {**JSON, "accept": "text/html"}, _rows(NORMAL)),
    ("POST", "/predict/batch", {**JSON, "accept": "text/html"}, b"[1,"),
    ("GET", "/predict", {}, b""),
    ("PUT", "/predict/batch", JSON, _rows(NORMAL)),
    ("POST", "/predict/", JSON, _json({"features": NORMAL})),
]
KEY_CASES: list[Case] = [
    ("POST", "/predict", JSON, _json({"features": NORMAL})),
    ("POST", "/predict", {**JSON, "x-api-key": "wrong"}, _json({"features": NORMAL})),
    ("POST", "/predict", {**JSON, "x-api-key": "client-key"}, _json({"features": NORMAL})),
    ("POST", "/predict", {**JSON, "authorization": "Bearer client-key"}, b"{"),
    ("POST", "/predict", {**JSON, "authorization": "Basic client-key"}, b"{"),
    ("POST", "/predict", {"authorization": "Bearer nope"}, b"{"),
    ("POST", "/predict/batch", JSON, _rows(NORMAL)),
    ("POST", "/predict/batch", {**JSON, "x-api-key": "admin-key"}, _rows(NORMAL)),
    ("POST", "/predict/batch", {**JSON, "authorization": "Bearer x"}, _rows(NORMAL)),
]
PUMPS = "/models/pumps/predict"
NAMED_CASES: list[Case] = [
    ("POST", "/models/default/predict", JSON, _json({"features": NORMAL, "observation_id": "d"})),
    ("POST", PUMPS, JSON, _json({"features": NORMAL, "observation_id": "p"})),
    ("POST", PUMPS, JSON, _json({"features": ANOMALOUS})),
    ("POST", PUMPS, JSON, _json({"features": ANOMALOUS})),  # a cache hit
    ("POST", PUMPS, JSON, _json({"features": ANOMALOUS, "top_k": 2})),
    ("POST", PUMPS, JSON, _json({"features": NORMAL[:5]})),
    ("POST", PUMPS, JSON, b'{"features": [1, 2'),
    ("POST", PUMPS, {"content-type": "text/plain"}, _json({"features": NORMAL})),
    ("POST", PUMPS, JSON, _json({"features": NORMAL, "pad": "x" * BODY_LIMIT})),  # 413
    ("POST", f"{PUMPS}/batch", JSON, _rows(NORMAL, ANOMALOUS)),
    ("POST", f"{PUMPS}/batch", {**JSON, "accept": TENSORS}, _rows(NORMAL, ANOMALOUS, top_k=1)),
    ("POST", f"{PUMPS}/batch", {**JSON, "accept": "text/html"}, _rows(NORMAL)),
    ("POST", f"{PUMPS}/batch", JSON, _rows(*[NORMAL] * 6)),  # above max_batch_rows
    ("POST", "/models/default/predict/batch", JSON, _rows(NORMAL)),
    ("POST", "/models/nope/predict", JSON, _json({"features": NORMAL})),  # unknown: 404
    ("POST", "/models/nope/predict/batch", JSON, b"not json"),
    ("POST", "/models/Pumps/predict", JSON, _json({"features": NORMAL})),  # not a name
    ("POST", "/models/%2e%2e/predict", JSON, _json({"features": NORMAL})),
    ("POST", "/models/a%2Fb/predict", JSON, _json({"features": NORMAL})),  # two segments
    ("POST", "/models/" + "x" * 80 + "/predict/batch", JSON, _rows(NORMAL)),
    ("POST", "/models//predict", JSON, _json({"features": NORMAL})),
    ("POST", "/models/pumps", JSON, _json({"features": NORMAL})),
    ("POST", f"{PUMPS}/", JSON, _json({"features": NORMAL})),
    ("GET", PUMPS, {}, b""),
    ("POST", "/models/pumps/predict/window", JSON, b"{}"),  # point-wise: 422
]
NAMED_KEY_CASES: list[Case] = [
    ("POST", PUMPS, JSON, _json({"features": NORMAL})),
    ("POST", PUMPS, {**JSON, "x-api-key": "client-key"}, _json({"features": NORMAL})),
    ("POST", "/models/nope/predict", JSON, _json({"features": NORMAL})),  # the key first
    ("POST", f"{PUMPS}/batch", {**JSON, "authorization": "Bearer x"}, _rows(NORMAL)),
]
NO_MODEL_CASES: list[Case] = [
    ("POST", "/predict", JSON, _json({"features": NORMAL})),
    ("POST", "/predict", JSON, b"not json"),
    ("POST", "/predict/batch", JSON, _rows(NORMAL)),
    ("POST", "/predict/batch", {**JSON, "accept": "text/html"}, _rows(NORMAL)),
]


T0 = 1_800_000_000
S1 = "/streams/s1/readings"
NAMED_N1 = "/models/default/streams/n1/readings"


def _readings(start: int, *rows: list[float], step: int = 300, **extra: Any) -> bytes:
    """Readings of one stream every ``step`` seconds from ``T0 + start``."""
    times = [T0 + start + i * step for i in range(len(rows))]
    return _json({"timestamps": times, "readings": list(rows), **extra})


WARM = [[*NORMAL[:-1], NORMAL[-1] + i * 0.01] for i in range(16)]
"""16 readings (a request's most): four of them fill the time-aware model's window."""
POLICY = {"alarm_policy": {"k": 2, "window": 3, "cooldown": 0}}
STREAM_CASES: list[Case] = [
    *[("POST", S1, JSON, _readings(i * 16 * 300, *WARM)) for i in range(4)],
    ("POST", S1, JSON, _readings(64 * 300, NORMAL)),  # a full window
    ("POST", S1, JSON, _readings(65 * 300, ANOMALOUS, ANOMALOUS, ANOMALOUS, **POLICY)),
    ("POST", S1, JSON, _readings(68 * 300, NORMAL, top_k=1, adapt=False)),
    ("POST", S1, JSON, _readings(68 * 300, NORMAL)),  # the same timestamp again: 409
    ("POST", S1, JSON, _readings(10, NORMAL)),  # back in time: 409
    ("POST", S1, JSON, _readings(69 * 300, NORMAL, NORMAL, step=-1)),  # 409 within
    ("POST", S1, JSON, _readings(70 * 300, NORMAL[:5])),  # wrong channels
    ("POST", S1, JSON, _json({"timestamps": [T0 + 21_000], "readings": []})),
    ("POST", S1, JSON, _json({"timestamps": ["yesterday"], "readings": [NORMAL]})),
    ("POST", S1, JSON, _readings(70 * 300, *[NORMAL] * 17)),  # above stream_max_readings
    ("POST", S1, JSON, b'{"timestamps": [1], "readings": [[NaN, 1, 2, 3, 4, 5, 6, 7]]}'),
    ("POST", S1, JSON, b'{"timestamps": [1'),
    ("POST", S1, {"content-type": "text/plain"}, _readings(70 * 300, NORMAL)),
    ("POST", S1, JSON, _readings(70 * 300, NORMAL, pad="x" * BODY_LIMIT)),  # 413
    ("POST", "/streams/-bad!id/readings", JSON, _readings(0, NORMAL)),  # not a stream id
    ("POST", "/streams/" + "x" * 129 + "/readings", JSON, _readings(0, NORMAL)),
    ("POST", "/streams/a%2Fb/readings", JSON, _readings(0, NORMAL)),  # two segments: 404
    ("POST", "/streams//readings", JSON, _readings(0, NORMAL)),
    ("POST", f"{S1}/", JSON, _readings(70 * 300, NORMAL)),
    ("GET", S1, {}, b""),
    ("POST", "/streams/s2/readings", JSON, _readings(0, NORMAL)),  # a new stream
    ("POST", NAMED_N1, JSON, _readings(0, *WARM)),
    ("POST", NAMED_N1, JSON, _readings(16 * 300, NORMAL)),
    ("POST", NAMED_N1, JSON, _readings(16 * 300, NORMAL)),  # 409
    ("POST", "/models/nope/streams/s1/readings", JSON, _readings(0, NORMAL)),  # 404
    ("POST", "/models/default/streams/-bad/readings", JSON, _readings(0, NORMAL)),
    ("POST", "/models/default/streams/s1/readings/x", JSON, _readings(0, NORMAL)),
    ("POST", "/predict/window", JSON, _readings(0, *WARM, *WARM, *WARM, *WARM, NORMAL)),
    ("POST", "/predict/window", JSON, _readings(0, *WARM[:3], mode="all", **POLICY)),
    ("POST", "/predict/window", JSON, _readings(0, NORMAL, NORMAL, step=0)),  # merged
    ("POST", "/predict/window", JSON, _readings(0, NORMAL, mode="some")),
    ("POST", "/predict/window", JSON, _readings(0, *[NORMAL] * 33)),  # above the limit
    ("POST", "/predict/window", JSON, b"[1,"),
    ("POST", "/models/default/predict/window", JSON, _readings(0, *WARM[:2])),
    ("POST", "/models/nope/predict/window", JSON, b"not json"),
]
STREAM_KEY_CASES: list[Case] = [
    ("POST", S1, JSON, _readings(0, NORMAL)),
    ("POST", S1, {**JSON, "x-api-key": "wrong"}, _readings(0, NORMAL)),
    ("POST", S1, {**JSON, "x-api-key": "client-key"}, _readings(0, NORMAL)),
    ("POST", "/streams/-bad/readings", {**JSON, "authorization": "Bearer x"}, b"{"),
    ("POST", NAMED_N1, JSON, _readings(0, NORMAL)),
    ("POST", NAMED_N1, {**JSON, "x-api-key": "client-key"}, _readings(0, NORMAL)),
    ("POST", "/predict/window", JSON, _readings(0, NORMAL)),
    ("POST", "/predict/window", {**JSON, "authorization": "Bearer client-key"}, b"{"),
]
NO_MODEL_CASES += [
    ("POST", S1, JSON, _readings(0, NORMAL)),
    ("POST", S1, JSON, b"not json"),
    ("POST", "/streams/-bad/readings", JSON, b"not json"),
    ("POST", "/predict/window", JSON, _readings(0, NORMAL)),
    ("POST", NAMED_N1, JSON, _readings(0, NORMAL)),
]


def _without_fast_path(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPathMiddleware]
    return app


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        lifespan(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client


_TIMING = re.compile(rb'("inference_ms"\W+)[0-9.eE+-]+')
_MADE_ID = re.compile(rb'"[0-9a-f]{32}"')
_EVENT_ID = re.compile(rb'"[0-9a-f]{8}-([0-9]+)"')


def _untimed(response: httpx.Response) -> Exchange:
    """The response with its timing, made ids and length as place holders, the length
    checked first."""
    body = response.content
    headers = response.headers.raw
    length = [value for name, value in headers if name == b"content-length"]
    assert length == [str(len(body)).encode()]
    headers = [(k, b"<length>" if k == b"content-length" else v) for k, v in headers]
    body = _EVENT_ID.sub(rb'"<epoch>-\g<1>"', _TIMING.sub(rb"\g<1><ms>", body))
    return response.status_code, headers, _MADE_ID.sub(b'"<id>"', body)


async def _exchange(client: httpx.AsyncClient, case: Case, request_id: str) -> Exchange:
    method, path, headers, body = case
    response = await client.request(
        method, path, content=body, headers={**headers, "x-request-id": request_id}
    )
    return _untimed(response)


_LOGGED = ("request_id", "route", "path", "status", "rows", "cache_hits", "model_version")


def _http_counts(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    counted = ("anomaly_http_requests_total", "anomaly_http_request_duration_seconds_count")
    return {key: value for key, value in samples(text).items() if key[0] in counted}


async def _both(
    settings: Settings,
    cases: list[Case],
    caplog: pytest.LogCaptureFixture,
    routed: Settings | None = None,
) -> list[tuple[Exchange, Exchange]]:
    """Each case's exchange with the fast app and the FastAPI-only app (on ``routed`` when
    given: its own Redis keys); their metrics and access logs are compared here."""
    pairs = []
    logs: list[list[tuple[Any, ...]]] = []
    counts = []
    fast, slow = create_app(settings), _without_fast_path(create_app(routed or settings))
    for app in (fast, slow):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="anomaly_api.access"):
            async with _client(app) as client:
                exchanges = [await _exchange(client, c, f"case-{i}") for i, c in enumerate(cases)]
                scrape = await client.get("/metrics", headers={"x-request-id": "scrape"})
                counts.append(_http_counts(scrape.text))
        logs.append(
            [
                (*(getattr(r, k) for k in _LOGGED), r.levelno, r.getMessage())
                for r in caplog.records
                if r.name == "anomaly_api.access"
            ]
        )
        pairs.append(exchanges)
    assert logs[0] == logs[1]
    assert len(logs[0]) == len(cases) + 1  # every request and the scrape logged
    assert counts[0] == counts[1]
    return list(zip(*pairs, strict=True))


def _assert_same(pairs: list[tuple[Exchange, Exchange]], cases: list[Case]) -> set[int]:
    for case, (fast, slow) in zip(cases, pairs, strict=True):
        assert fast == slow, case
    return {fast[0] for fast, _ in pairs}


async def test_open_routes_answer_byte_for_byte_alike(
    tiny_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tiny_artifacts_dir, max_body_bytes=BODY_LIMIT, max_batch_rows=5)
    pairs = await _both(settings, OPEN_CASES, caplog)
    statuses = _assert_same(pairs, OPEN_CASES)
    assert statuses == {200, 307, 400, 405, 406, 413, 415, 422}
    hit, miss = pairs[2][0][2], pairs[1][0][2]  # the same reading twice: the cache answers
    assert hit == miss.replace(b'"cached":false', b'"cached":true') != miss


async def test_chunked_body_above_the_limit_is_the_same_413(
    tiny_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tiny_artifacts_dir, max_body_bytes=BODY_LIMIT)
    exchanges = []
    for app in (create_app(settings), _without_fast_path(create_app(settings))):

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * (BODY_LIMIT // 2)

        async with _client(app) as client:
            headers = {**JSON, "x-request-id": "chunked"}
            response = await client.post("/predict", content=chunks(), headers=headers)
            exchanges.append((response.status_code, response.headers.raw, response.content))
    assert exchanges[0][0] == 413
    assert (b"connection", b"close") in exchanges[0][1]
    assert exchanges[0] == exchanges[1]


async def test_keyed_routes_answer_byte_for_byte_alike(
    tiny_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tiny_artifacts_dir, api_keys=["client-key"], admin_api_keys=["admin-key"]
    )
    pairs = await _both(settings, KEY_CASES, caplog)
    assert _assert_same(pairs, KEY_CASES) == {200, 400, 401, 403}


@pytest.fixture
def fleet_dir(tiny_artifacts_dir: Path, tmp_path: Path) -> Path:
    """The tiny model as ``default`` and another fit as the named model ``pumps``."""
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, root)
    fit_tiny_artifact(registry.model_dir(root, "pumps"), "p1", seed=1)
    registry.register_version(root, "pumps", "p1")
    return root


async def test_named_routes_answer_byte_for_byte_alike(
    fleet_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(fleet_dir, max_body_bytes=BODY_LIMIT, max_batch_rows=5)
    pairs = await _both(settings, NAMED_CASES, caplog)
    statuses = _assert_same(pairs, NAMED_CASES)
    assert statuses == {200, 307, 400, 404, 405, 406, 413, 415, 422}
    assert b'"model_version":"p1"' in pairs[1][0][2]
    assert b'"code":"model_not_found"' in pairs[14][0][2]


async def test_named_keyed_routes_answer_byte_for_byte_alike(
    fleet_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(fleet_dir, api_keys=["client-key"])
    pairs = await _both(settings, NAMED_KEY_CASES, caplog)
    assert _assert_same(pairs, NAMED_KEY_CASES) == {200, 401, 403}


async def test_without_a_model_the_answers_are_alike(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = await _both(make_settings(tmp_path / "empty"), NO_MODEL_CASES, caplog)
    assert _assert_same(pairs, NO_MODEL_CASES) == {503}


async def test_stream_routes_answer_byte_for_byte_alike(
    ta_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(ta_artifacts_dir, max_body_bytes=BODY_LIMIT, window_max_readings=32)
    pairs = await _both(settings, STREAM_CASES, caplog)
    statuses = _assert_same(pairs, STREAM_CASES)
    assert statuses == {200, 307, 400, 404, 405, 409, 413, 415, 422}
    full, alarmed = pairs[4][0][2], pairs[5][0][2]
    assert b'"warming_up":false' in full
    assert b'"event_id":"<epoch>-1"' in alarmed  # the masked id is there to compare


@pytest.mark.parametrize("redis", ["up", "down"])
async def test_stream_routes_on_redis_answer_byte_for_byte_alike(
    ta_artifacts_dir: Path, caplog: pytest.LogCaptureFixture, redis: str
) -> None:
    """Each app on its own keys of the shared Redis, or on a Redis that does not answer
    (the store serves from process memory, ``degraded``)."""
    cases = STREAM_CASES[:8]
    down = {"redis_url": "redis://127.0.0.1:1/0", "redis_connect_timeout_s": 0.2}
    with stream_backend("redis", "fast") as fast, stream_backend("redis", "routed") as routed:
        settings, other = (
            make_settings(ta_artifacts_dir, **(kw | down if redis == "down" else kw))
            for kw in (fast, routed)
        )
        pairs = await _both(settings, cases, caplog, other)
    assert _assert_same(pairs, cases) == {200, 409}
    full = pairs[4][0][2]
    assert b'"backend":"redis"' in full
    assert (b'"degraded":true' in full) == (redis == "down")


async def test_stream_keyed_routes_answer_byte_for_byte_alike(
    ta_artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(ta_artifacts_dir, api_keys=["client-key"])
    pairs = await _both(settings, STREAM_KEY_CASES, caplog)
    assert _assert_same(pairs, STREAM_KEY_CASES) == {200, 400, 401, 403}


async def test_the_fast_path_skips_the_dependency_solving(
    tiny_artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    settings = make_settings(tiny_artifacts_dir)
    served = [
        "/predict",
        "/predict/batch",
        "/models/default/predict",
        S1,
        NAMED_N1,
        "/predict/window",
        "/models/default/predict/window",
    ]
    for app, expected in (
        (create_app(settings), ["/health"]),
        (_without_fast_path(create_app(settings)), [*served, "/health"]),
    ):
        solved.clear()
        async with _client(app) as client:
            assert (await client.post("/predict", json={"features": NORMAL})).status_code == 200
            batch = await client.post("/predict/batch", content=_rows(NORMAL), headers=JSON)
            assert batch.status_code == 200
            named = await client.post("/models/default/predict", json={"features": NORMAL})
            assert named.status_code == 200
            for path in served[3:]:
                response = await client.post(path, content=_readings(0, NORMAL), headers=JSON)
                assert response.status_code == 200, path
            assert (await client.get("/health")).status_code == 200
        assert solved == expected


def test_the_fast_path_resolves_what_the_routes_declare(tiny_artifacts_dir: Path) -> None:
    """The routes still depend on exactly what the fast path resolves by hand: a new
    dependency on them must be added to the fast path too."""
    resolved = {
        ("POST", "/predict"): [require_api_key, get_predict_call],
        ("POST", "/predict/batch"): [require_api_key, get_batch_call],
        ("POST", "/models/{name}/predict"): [require_api_key],
        ("POST", "/models/{name}/predict/batch"): [require_api_key],
        **{key: [require_api_key] for key in STREAM_ROUTES},
    }
    assert set(FAST_ROUTES) == set(resolved)
    app = create_app(make_settings(tiny_artifacts_dir))
    served = {
        (method, context.path): context
        for context in fastapi.routing.iter_route_contexts(app.routes)
        for method in context.methods or ()
    }
    for key, calls in resolved.items():
        context = served[key]  # as the app routes it, the router's dependencies included
        assert context.original_route is FastPathMiddleware(app).routes[key][1]
        dependant = context.dependant
        assert [d.call for d in dependant.dependencies] == calls
        named = [param.name for param in dependant.path_params]
        assert named == re.findall(r"\{(\w+)\}", key[1])  # each a str: never refused
        assert all(param.field_info.annotation is str for param in dependant.path_params)
        assert (dependant.query_params, dependant.header_params) == ([], [])
        assert dependant.cookie_params == dependant.body_params == []
