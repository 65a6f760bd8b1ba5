"""A stream's adaptive threshold over HTTP: frozen through a fault, reported by
``GET /streams/{id}``, reset by ``DELETE``, switched off per request (bad values 422),
widened by feedback and taken back, and shared by two apps on one Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.api.schemas import StreamReadingsResponse, StreamStateResponse
from anomaly_api.monitoring.adaptation import AdaptationModel
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, serve_app, stream_backend

QUIET = AdaptationModel(reference=0.0, spread=1.0).quiet
# 2 anomalies within 3 readings raise an alarm; no cool-down; 64 readings a request
POLICY = {
    "alarm_min_anomalies": 2,
    "alarm_window": 3,
    "alarm_cooldown": 0,
    "stream_max_readings": 64,
}


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    with stream_backend(request.param, "stream-adaptation") as settings:
        yield settings


@pytest.fixture
async def http(
    tiny_artifacts_dir: Path, backend: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(tiny_artifacts_dir, **POLICY, **backend)) as client:
        yield client


async def _send(
    http: httpx.AsyncClient, sid: str, t0: float, rows: list[list[float]], **extra: Any
) -> StreamReadingsResponse:
    body = {"timestamps": [t0 + i for i in range(len(rows))], "readings": rows, **extra}
    response = await http.post(f"/streams/{sid}/readings", json=body)
    assert response.status_code == 200, response.text
    return StreamReadingsResponse.model_validate(response.json())


async def _adaptation(http: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await http.get(f"/streams/{sid}")
    assert response.status_code == 200, response.text
    adaptation: dict[str, Any] = StreamStateResponse.model_validate(response.json()).model_dump()[
        "adaptation"
    ]
    return adaptation


async def test_get_reports_the_state_and_a_long_fault_is_frozen_out(
    http: httpx.AsyncClient,
) -> None:
    sid = "adapt-1"
    await _send(http, sid, 0.0, [NORMAL] * (QUIET + 10))
    before = await _adaptation(http, sid)
    assert before["enabled"] is True
    assert before["reference"] is not None
    assert (before["learned"], before["frozen"]) == (QUIET + 10, 0)
    assert before["level"] is not None
    fault = await _send(http, sid, 100.0, [ANOMALOUS] * 16)
    fault2 = await _send(http, sid, 200.0, [ANOMALOUS] * 16)
    assert all(a.is_anomaly for a in fault.answers + fault2.answers)
    assert fault2.answers[-1].is_anomaly  # still flagged at its end
    after = await _adaptation(http, sid)
    assert (after["learned"], after["level"]) == (QUIET + 10, before["level"])
    assert after["frozen"] == 32
    assert fault2.stream.threshold_raise == pytest.approx(before["threshold_raise"])


async def test_delete_resets_the_adaptive_state(http: httpx.AsyncClient) -> None:
    sid = "adapt-2"
    await _send(http, sid, 0.0, [NORMAL] * (QUIET + 5))
    eid = (await _send(http, sid, 50.0, [ANOMALOUS, ANOMALOUS])).answers[1].event_id
    url = f"/streams/{sid}/events/{eid}/feedback"
    assert (await http.post(url, json={"label": "false_alarm"})).status_code == 200
    used = await _adaptation(http, sid)
    assert (used["learned"], used["frozen"], len(used["widenings"])) == (QUIET + 5, 2, 1)
    assert (await http.delete(f"/streams/{sid}")).status_code == 204
    await _send(http, sid, 0.0, [NORMAL])
    fresh = await _adaptation(http, sid)
    assert (fresh["learned"], fresh["frozen"], fresh["widenings"]) == (1, 0, [])
    assert fresh["by_feedback"] == 0.0


async def test_a_request_can_switch_adaptation_off(http: httpx.AsyncClient) -> None:
    sid = "adapt-3"
    on = await _send(http, sid, 0.0, [NORMAL] * (QUIET + 5))
    assert on.stream.threshold_raise is not None
    before = await _adaptation(http, sid)
    off = await _send(http, sid, 100.0, [NORMAL] * 5, adapt=False)
    assert off.stream.threshold_raise is None
    assert await _adaptation(http, sid) == before  # left as it was
    again = await _send(http, sid, 200.0, [NORMAL] * 5, adapt=True)
    assert again.stream.threshold_raise is not None
    assert (await _adaptation(http, sid))["learned"] == before["learned"] + 5


@pytest.mark.parametrize("value", ["yes", "false", 1, 0, [], {}])
async def test_a_bad_adapt_value_is_a_422_and_changes_nothing(
    http: httpx.AsyncClient, value: Any
) -> None:
    sid = "adapt-4"
    await _send(http, sid, 0.0, [NORMAL])
    before = (await http.get(f"/streams/{sid}")).json()
    body = {"timestamps": [10.0], "readings": [NORMAL], "adapt": value}
    response = await http.post(f"/streams/{sid}/readings", json=body)
    assert_error(response, 422, "invalid_request", "adapt")
    after = (await http.get(f"/streams/{sid}")).json()
    assert {**after, "expires_in_s": 0} == {**before, "expires_in_s": 0}


async def test_feedback_widens_the_threshold_and_confirmed_takes_it_back(
    http: httpx.AsyncClient,
) -> None:
    sid = "adapt-5"
    answers = (await _send(http, sid, 0.0, [NORMAL, ANOMALOUS, ANOMALOUS, NORMAL])).answers
    eid = answers[2].event_id
    assert eid is not None
    assert (await _adaptation(http, sid))["widenings"] == []
    url = f"/streams/{sid}/events/{eid}/feedback"
    assert (await http.post(url, json={"label": "false_alarm"})).status_code == 200
    widened = await _adaptation(http, sid)
    assert [w["event_id"] for w in widened["widenings"]] == [eid]
    amount = widened["widenings"][0]["amount"]
    assert 0 < amount <= 2.0  # the default max_step
    event = (await http.get(f"/streams/{sid}/events")).json()["events"][0]
    allowed = widened["widenings"][0]["allowances"]  # the event's sensors only
    assert set(allowed) == {s["feature"] for s in event["top_sensors"] if s["share"] > 0}
    # a point-wise model measures no deviation by kind: the allowances are not bounded
    assert [s["peak_z"] for s in event["top_sensors"]] == [None] * len(event["top_sensors"])
    assert widened["widenings"][0]["bounds"] == {}
    assert amount == max(allowed.values())
    assert widened["by_feedback"] == pytest.approx(amount)
    assert widened["threshold_raise"] >= amount
    later = await _send(http, sid, 10.0, [NORMAL])
    assert later.stream.threshold_raise == pytest.approx(widened["threshold_raise"])
    assert (await http.post(url, json={"label": "confirmed"})).status_code == 200
    undone = await _adaptation(http, sid)
    assert (undone["widenings"], undone["by_feedback"]) == ([], 0.0)
    assert (await http.post(url, json={"label": "expected"})).status_code == 200
    assert [w["event_id"] for w in (await _adaptation(http, sid))["widenings"]] == [eid]


async def test_two_apps_sharing_redis_see_one_adaptive_state(tiny_artifacts_dir: Path) -> None:
    sid = "adapt-6"
    with stream_backend("redis", "stream-adaptation-shared") as backend:
        settings = make_settings(tiny_artifacts_dir, **POLICY, **backend)
        async with serve_app(settings) as one, serve_app(settings) as two:
            await _send(one, sid, 0.0, [NORMAL] * (QUIET + 3))
            await _send(two, sid, 100.0, [NORMAL] * 4)
            seen = await _adaptation(one, sid)
            assert seen == await _adaptation(two, sid)
            assert seen["learned"] == QUIET + 7
            eid = (await _send(one, sid, 200.0, [ANOMALOUS, ANOMALOUS])).answers[1].event_id
            feedback = {"label": "false_alarm"}
            url = f"/streams/{sid}/events/{eid}/feedback"
            assert (await two.post(url, json=feedback)).status_code == 200
            widened = await _adaptation(one, sid)
            assert [w["event_id"] for w in widened["widenings"]] == [eid]
            nxt = await _send(one, sid, 300.0, [NORMAL])  # an append keeps the widening
            assert nxt.stream.threshold_raise == pytest.approx(widened["threshold_raise"])
            assert (await _adaptation(two, sid))["widenings"] == widened["widenings"]
