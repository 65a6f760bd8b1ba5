"""``GET /streams`` and ``GET /streams/{id}/scores`` over HTTP, in process memory and in the
shared Redis: pages by id, recent scores in time order, the ring's bound, a restart and
``DELETE`` emptying it, bad parameters 422, unknown streams 404, keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.api.schemas import StreamListResponse, StreamScoresResponse
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, serve_app, stream_backend

RING = 4
CLIENT_KEY = "listing-client-key"


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    with stream_backend(request.param, "stream-listing") as settings:
        yield settings


@pytest.fixture
async def http(
    tiny_artifacts_dir: Path, backend: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tiny_artifacts_dir, stream_recent_scores=RING, **backend)
    async with serve_app(settings) as client:
        yield client


async def _send(http: httpx.AsyncClient, sid: str, t0: float, rows: list[list[float]]) -> None:
    body = {"timestamps": [t0 + i for i in range(len(rows))], "readings": rows}
    response = await http.post(f"/streams/{sid}/readings", json=body)
    assert response.status_code == 200, response.text


async def _scores(http: httpx.AsyncClient, sid: str, **params: Any) -> StreamScoresResponse:
    response = await http.get(f"/streams/{sid}/scores", params=params)
    assert response.status_code == 200, response.text
    return StreamScoresResponse.model_validate(response.json())


async def _page(http: httpx.AsyncClient, **params: Any) -> StreamListResponse:
    response = await http.get("/streams", params=params)
    assert response.status_code == 200, response.text
    return StreamListResponse.model_validate(response.json())


async def test_scores_are_the_answers_in_time_order(http: httpx.AsyncClient) -> None:
    body = {"timestamps": [10.0, 11.0, 12.0], "readings": [NORMAL, ANOMALOUS, NORMAL]}
    answered = (await http.post("/streams/pump-1/readings", json=body)).json()["answers"]
    found = await _scores(http, "pump-1")
    assert found.capacity == RING
    assert [s.anomaly_score for s in found.scores] == [a["anomaly_score"] for a in answered]
    assert [s.is_anomaly for s in found.scores] == [False, True, False]
    assert [s.timestamp for s in found.scores] == [a["timestamp"] for a in answered]
    assert {s.threshold for s in found.scores} == {0.0}


async def test_the_ring_keeps_the_newest_and_limit_takes_the_latest(
    http: httpx.AsyncClient,
) -> None:
    await _send(http, "pump-1", 0.0, [NORMAL] * 3)
    await _send(http, "pump-1", 3.0, [ANOMALOUS, NORMAL, NORMAL])
    found = await _scores(http, "pump-1")
    assert [s.timestamp[11:19] for s in found.scores] == [
        "00:00:02",
        "00:00:03",
        "00:00:04",
        "00:00:05",
    ]
    assert [s.is_anomaly for s in found.scores] == [False, True, False, False]
    latest = await _scores(http, "pump-1", limit=2)
    assert latest.scores == found.scores[-2:]


async def test_delete_empties_the_ring(http: httpx.AsyncClient) -> None:
    await _send(http, "pump-1", 100.0, [ANOMALOUS, NORMAL])
    assert (await http.delete("/streams/pump-1")).status_code == 204
    assert_error(await http.get("/streams/pump-1/scores"), 404, "stream_not_found")
    await _send(http, "pump-1", 0.0, [NORMAL])  # a new life, earlier timestamps
    found = await _scores(http, "pump-1")
    assert len(found.scores) == 1
    assert found.scores[0].timestamp.startswith("1970-01-01T00:00:00")


async def test_streams_are_listed_by_id_a_page_at_a_time(http: httpx.AsyncClient) -> None:
    ids = ["b-2", "a-1", "c:3", "B-0", "a.0"]
    for sid in ids:
        await _send(http, sid, 0.0, [NORMAL])
    first = await _page(http, limit=2)
    assert [s.stream_id for s in first.streams] == sorted(ids)[:2]
    assert first.next_after == sorted(ids)[1]
    assert all(0 < s.expires_in_s <= 3600 for s in first.streams)
    second = await _page(http, limit=2, after=first.next_after)
    assert [s.stream_id for s in second.streams] == sorted(ids)[2:4]
    last = await _page(http, limit=2, after=second.next_after)
    assert [s.stream_id for s in last.streams] == sorted(ids)[4:]
    assert last.next_after is None
    everything = await _page(http)
    assert [s.stream_id for s in everything.streams] == sorted(ids)
    assert everything.next_after is None
    assert (await http.delete("/streams/c:3")).status_code == 204
    assert "c:3" not in [s.stream_id for s in (await _page(http)).streams]


async def test_no_streams_is_an_empty_page(http: httpx.AsyncClient) -> None:
    page = await _page(http)
    assert page.streams == []
    assert page.next_after is None
    assert page.degraded is False


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=x", "after=", "after=-bad", "after=" + "a" * 129],
)
async def test_bad_page_parameters_are_422(http: httpx.AsyncClient, query: str) -> None:
    assert_error(await http.get(f"/streams?{query}"), 422, "invalid_request")


@pytest.mark.parametrize("query", ["limit=0", "limit=2001", "limit=-1", "limit=1.5"])
async def test_bad_score_limits_are_422(http: httpx.AsyncClient, query: str) -> None:
    await _send(http, "pump-1", 0.0, [NORMAL])
    assert_error(await http.get(f"/streams/pump-1/scores?{query}"), 422, "invalid_request")


async def test_unknown_or_invalid_streams(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/streams/nobody/scores"), 404, "stream_not_found")
    assert_error(await http.get("/streams/-bad/scores"), 422, "invalid_stream_id")


async def test_zero_recent_scores_records_none(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, stream_recent_scores=0)
    async with serve_app(settings) as http:
        await _send(http, "pump-1", 0.0, [NORMAL, ANOMALOUS])
        found = await _scores(http, "pump-1")
    assert (found.scores, found.capacity) == ([], 0)


async def test_listing_and_scores_need_the_client_key_once_keys_exist(
    tiny_artifacts_dir: Path,
) -> None:
    settings = make_settings(tiny_artifacts_dir, api_keys=CLIENT_KEY)
    async with serve_app(settings) as http:
        assert (await http.get("/streams")).status_code == 401
        assert (await http.get("/streams/pump-1/scores")).status_code == 401
        wrong = {"X-API-Key": "not-the-key"}
        assert (await http.get("/streams", headers=wrong)).status_code == 403
        ok = await http.get("/streams", headers={"X-API-Key": CLIENT_KEY})
        assert ok.status_code == 200


async def test_two_replicas_sharing_redis_list_the_same_streams_and_scores(
    tiny_artifacts_dir: Path,
) -> None:
    """Two apps on one Redis prefix: B lists the stream A started; once A has written its
    queued scores (its own read writes them first), B reads the same ring."""
    with stream_backend("redis", "listing-replicas") as shared:
        settings = make_settings(tiny_artifacts_dir, stream_recent_scores=RING, **shared)
        async with serve_app(settings) as a, serve_app(settings) as b:
            await _send(a, "shared-1", 0.0, [NORMAL, ANOMALOUS])
            assert [s.stream_id for s in (await _page(b)).streams] == ["shared-1"]
            from_a = await _scores(a, "shared-1")
            from_b = await _scores(b, "shared-1")
            assert from_b == from_a
            assert [s.is_anomaly for s in from_b.scores] == [False, True]
            await _send(b, "shared-1", 2.0, [NORMAL])
            assert len((await _scores(b, "shared-1")).scores) == 3
