"""Stream events and operator feedback over HTTP, in process memory and in the shared Redis:
events opened and closed by the readings, the event each answer names, paging, the
per-stream bound, DELETE; feedback's 404/422/401, idempotence, history and metrics; and two
server processes sharing one Redis seeing one stream's events."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.api.schemas import (
    StreamEventResponse,
    StreamEventsResponse,
    StreamReadingsResponse,
)
from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.service import streamplane
from anomaly_api.service.streams import InvalidReadingsError
from anomaly_api.testing import running_server, throwaway_redis
from api_testing import (
    ANOMALOUS,
    NORMAL,
    assert_error,
    make_settings,
    samples,
    serve_app,
    stream_backend,
)
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED, synthetic_segments

# 2 anomalies within 3 readings raise an alarm; no cool-down
POLICY = {"alarm_min_anomalies": 2, "alarm_window": 3, "alarm_cooldown": 0}
# one event: readings 1-2 (alarm at 2), 3-4 inside it, 5 closes it; 6 alone opens none
SEQUENCE = [NORMAL, ANOMALOUS, ANOMALOUS, NORMAL, NORMAL, NORMAL, ANOMALOUS, NORMAL]
CLIENT_KEY = "events-client-key"


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings of the stream store: process memory, or the shared Redis (a private prefix)."""
    with stream_backend(request.param, "stream-events") as settings:
        yield settings


@pytest.fixture
async def http(
    tiny_artifacts_dir: Path, backend: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tiny_artifacts_dir, stream_max_events=3, **POLICY, **backend)
    async with serve_app(settings) as client:
        yield client


async def _send(
    http: httpx.AsyncClient, sid: str, t0: float, rows: list[list[float]]
) -> list[str | None]:
    body = {"timestamps": [t0 + i for i in range(len(rows))], "readings": rows}
    response = await http.post(f"/streams/{sid}/readings", json=body)
    assert response.status_code == 200, response.text
    return [a.event_id for a in StreamReadingsResponse.model_validate(response.json()).answers]


async def _events(http: httpx.AsyncClient, sid: str, **params: Any) -> StreamEventsResponse:
    response = await http.get(f"/streams/{sid}/events", params=params)
    assert response.status_code == 200, response.text
    return StreamEventsResponse.model_validate(response.json())


async def test_readings_open_and_close_an_event(http: httpx.AsyncClient) -> None:
    sid = "plant-1:pump-1"
    ids = [eid for i, row in enumerate(SEQUENCE) for eid in await _send(http, sid, i, [row])]
    assert ids[:2] == [None, None]  # answered before the alarm opened it
    assert ids[2] is not None
    assert ids[2] == ids[3] == ids[4]
    assert ids[5:] == [None, None, None]
    page = await _events(http, sid)
    assert [e.id for e in page.events] == [ids[2]]
    event = page.events[0]
    assert (event.start, event.end, event.open) == (
        "1970-01-01T00:00:01+00:00",
        "1970-01-01T00:00:02+00:00",
        False,
    )
    assert (event.readings, event.anomalies, event.first_reading) == (2, 2, 1)
    assert 0 < event.peak_severity < 1
    assert len(event.top_sensors) == 3
    top = event.top_sensors[0]
    assert top.share >= event.top_sensors[1].share >= event.top_sensors[2].share
    assert top.read == ANOMALOUS[int(top.feature.removeprefix("f"))]  # features f0..f7
    assert top.expected_low < top.expected_high
    assert not top.expected_low <= top.read <= top.expected_high  # it read out of range
    assert (event.feedback, event.feedback_history) == (None, [])
    assert top.why is None  # a point-wise model gives no reasons
    # the same readings in one request give the same event (ids differ per stream)
    at_once = await _send(http, "plant-1:pump-2", 0.0, SEQUENCE)
    assert [eid and eid[9:] for eid in at_once] == [eid and eid[9:] for eid in ids]
    # an event still open says so
    await _send(http, "plant-1:pump-3", 0.0, [ANOMALOUS, ANOMALOUS])
    (open_event,) = (await _events(http, "plant-1:pump-3")).events
    assert (open_event.open, open_event.end) == (True, None)


async def test_events_are_newest_first_paged_bounded_and_reset_by_delete(
    http: httpx.AsyncClient,
) -> None:
    sid = "plant-2:pump-1"
    burst = [ANOMALOUS, ANOMALOUS, NORMAL, NORMAL, NORMAL]  # one event per burst
    ids = []
    for k in range(5):
        ids.append((await _send(http, sid, 10.0 * k, burst))[1])
    everything = await _events(http, sid)
    assert [e.id for e in everything.events] == ids[::-1][:3]  # stream_max_events = 3
    assert everything.next_before is None
    first = await _events(http, sid, limit=2)
    assert [e.id for e in first.events] == [ids[4], ids[3]]
    assert first.next_before == ids[3]
    second = await _events(http, sid, limit=2, before=first.next_before)
    assert [e.id for e in second.events] == [ids[2]]
    assert second.next_before is None
    assert (await http.delete(f"/streams/{sid}")).status_code == 204
    assert_error(await http.get(f"/streams/{sid}/events"), 404, "stream_not_found")
    await _send(http, sid, 100.0, [NORMAL])
    assert (await _events(http, sid)).events == []
    feedback = {"label": "confirmed"}
    stale = await http.post(f"/streams/{sid}/events/{ids[4]}/feedback", json=feedback)
    assert_error(stale, 404, "event_not_found")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before": "nope"}, {"before": "0123-1"}],
)
async def test_a_bad_page_is_a_422(http: httpx.AsyncClient, params: dict[str, Any]) -> None:
    await _send(http, "plant-3:pump-1", 0.0, [ANOMALOUS, ANOMALOUS])
    assert_error(
        await http.get("/streams/plant-3:pump-1/events", params=params), 422, "invalid_request"
    )
    assert_error(await http.get("/streams/plant-3:nobody/events"), 404, "stream_not_found")


async def test_feedback_is_stored_with_the_event_idempotent_and_listed(
    http: httpx.AsyncClient,
) -> None:
    sid = "plant-4:pump-1"
    eid = (await _send(http, sid, 0.0, SEQUENCE))[2]  # a closed event
    url = f"/streams/{sid}/events/{eid}/feedback"
    first = await http.post(url, json={"label": "false_alarm", "note": "valve test"})
    assert first.status_code == 200, first.text
    event = StreamEventResponse.model_validate(first.json())
    assert event.id == eid
    assert event.feedback is not None
    assert (event.feedback.label, event.feedback.note, event.feedback.by) == (
        "false_alarm",
        "valve test",
        "anonymous",  # no keys configured
    )
    again = StreamEventResponse.model_validate(
        (await http.post(url, json={"label": "false_alarm", "note": "again"})).json()
    )
    assert again.feedback_history == event.feedback_history  # one feedback, the first note
    replaced = StreamEventResponse.model_validate(
        (await http.post(url, json={"label": "confirmed"})).json()
    )
    assert replaced.feedback is not None
    assert replaced.feedback.label == "confirmed"
    assert [f.label for f in replaced.feedback_history] == ["false_alarm", "confirmed"]
    (listed,) = (await _events(http, sid)).events
    assert listed == replaced
    metrics = samples((await http.get("/metrics")).text)
    assert metrics[("anomaly_event_feedback_total", (("label", "false_alarm"),))] == 1
    assert metrics[("anomaly_event_feedback_total", (("label", "confirmed"),))] == 1
    assert metrics[("anomaly_event_feedback_total", (("label", "expected"),))] == 0
    assert metrics[("anomaly_event_precision", ())] == 0.5


@pytest.mark.parametrize(
    "body",
    [
        {"label": "maybe"},
        {"label": "FALSE_ALARM"},
        {},
        {"label": "confirmed", "extra": 1},
        {"label": "confirmed", "note": 3},
        {"label": "confirmed", "note": "x" * 1001},
        [],
    ],
)
async def test_bad_feedback_is_a_422_and_changes_nothing(
    http: httpx.AsyncClient, body: Any
) -> None:
    sid = "plant-5:pump-1"
    await http.delete(f"/streams/{sid}")
    eid = (await _send(http, sid, 0.0, [ANOMALOUS, ANOMALOUS]))[1]
    before = (await http.get(f"/streams/{sid}/events")).json()
    response = await http.post(f"/streams/{sid}/events/{eid}/feedback", json=body)
    assert_error(response, 422, "invalid_request")
    assert (await http.get(f"/streams/{sid}/events")).json() == before
    unknown = f"/streams/{sid}/events/{eid[:8]}-99/feedback"
    assert_error(await http.post(unknown, json={"label": "confirmed"}), 404, "event_not_found")
    junk = f"/streams/{sid}/events/not-an-id/feedback"
    assert_error(await http.post(junk, json={"label": "confirmed"}), 404, "event_not_found")
    assert (await http.get(f"/streams/{sid}/events")).json() == before


async def test_feedback_needs_a_key_and_records_whose(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, api_keys=[CLIENT_KEY], **POLICY)
    headers = {"X-API-Key": CLIENT_KEY}
    async with serve_app(settings) as http:
        body = {"timestamps": [0.0, 1.0], "readings": [ANOMALOUS, ANOMALOUS]}
        answer = await http.post("/streams/s/readings", json=body, headers=headers)
        eid = answer.json()["answers"][1]["event_id"]
        url = f"/streams/s/events/{eid}/feedback"
        assert_error(await http.post(url, json={"label": "confirmed"}), 401, "missing_api_key")
        wrong = await http.post(url, json={"label": "confirmed"}, headers={"X-API-Key": "no"})
        assert_error(wrong, 403, "invalid_api_key")
        (event,) = (await http.get("/streams/s/events", headers=headers)).json()["events"]
        assert event["feedback"] is None
        ok = await http.post(url, json={"label": "expected"}, headers=headers)
        assert ok.status_code == 200, ok.text
        digest = hashlib.sha256(CLIENT_KEY.encode()).hexdigest()
        assert ok.json()["feedback"]["by"] == f"client:{digest[:12]}"


def test_two_replicas_sharing_redis_see_one_streams_events(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    """An event opened through one server process, carried on and closed through the other;
    both list it; feedback sent to one is listed by the other."""
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir),
        "ANOMALY_ALARM_MIN_ANOMALIES": "2",
        "ANOMALY_ALARM_WINDOW": "3",
        "ANOMALY_ALARM_COOLDOWN": "0",
        "ANOMALY_REDIS_TIMEOUT_S": "1.0",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with throwaway_redis(tmp_path) as server:
        env["ANOMALY_REDIS_URL"] = server.url
        with (
            running_server(tmp_path / "a", env) as a,
            running_server(tmp_path / "b", env) as b,
            httpx.Client(timeout=30) as client,
        ):
            ids = []
            for i, row in enumerate(SEQUENCE):
                url = (a if i % 2 == 0 else b).url
                body = {"timestamps": [float(i)], "readings": [row]}
                answer = client.post(f"{url}/streams/shared/readings", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["stream"]["backend"] == "redis"
                ids.append(answer.json()["answers"][0]["event_id"])
            assert ids[2] is not None
            assert ids[2] == ids[3] == ids[4]  # answered by b, a, b
            assert ids[5:] == [None, None, None]
            from_a = client.get(f"{a.url}/streams/shared/events").json()
            from_b = client.get(f"{b.url}/streams/shared/events").json()
            assert from_a == from_b
            (event,) = from_a["events"]
            assert (event["id"], event["open"], event["anomalies"]) == (ids[2], False, 2)
            url = f"{b.url}/streams/shared/events/{ids[2]}/feedback"
            assert client.post(url, json={"label": "false_alarm"}).status_code == 200
            (listed,) = client.get(f"{a.url}/streams/shared/events").json()["events"]
            assert listed["feedback"]["label"] == "false_alarm"
            assert client.delete(f"{a.url}/streams/shared").status_code == 204
            assert client.get(f"{b.url}/streams/shared/events").status_code == 404
            assert not list(server.client().scan_iter(match="*e:shared"))


async def _label_bounds_its_allowances(http: httpx.AsyncClient, series: Any, start: int) -> None:
    """A ``false_alarm`` label on a time-aware stream's event: the widening's bounds are the
    event's ``peak_z`` of its sensors (what the label says is normal)."""
    for first in range(start - 80, start + 40, 16):
        rows = slice(first, first + 16)
        body = {
            "timestamps": series.timestamps[rows].tolist(),
            "readings": series.data.X[rows].tolist(),
        }
        assert (await http.post("/streams/ta:label/readings", json=body)).status_code == 200
    event = (await _events(http, "ta:label", limit=1)).events[0]
    url = f"/streams/ta:label/events/{event.id}/feedback"
    assert (await http.post(url, json={"label": "false_alarm"})).status_code == 200
    state = (await http.get("/streams/ta:label")).json()["adaptation"]
    assert [w["event_id"] for w in state["widenings"]] == [event.id]
    expected = {s.feature: s.peak_z for s in event.top_sensors if s.share > 0}
    assert state["widenings"][0]["bounds"] == expected


async def test_a_time_aware_stream_makes_an_event_of_a_stuck_sensor(ta_artifacts_dir: Path) -> None:
    """The default time-aware model over a stuck-sensor segment of its synthetic stream:
    an event inside the segment, carried by the stuck channel, and every event id an answer
    names is listed."""
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    _, start, stop, channels = next(
        e for e in synthetic_segments() if e[0] == "stuck_sensor" and e[1] > 100
    )
    settings = make_settings(
        ta_artifacts_dir, alarm_min_anomalies=3, alarm_window=10, alarm_cooldown=30
    )
    named: set[str] = set()
    async with serve_app(settings) as http:
        await _label_bounds_its_allowances(http, series, start)
        for first in range(start - 80, stop + 16, 16):
            rows = slice(first, first + 16)
            body = {
                "timestamps": series.timestamps[rows].tolist(),
                "readings": series.data.X[rows].tolist(),
            }
            response = await http.post("/streams/ta:stuck/readings", json=body)
            assert response.status_code == 200, response.text
            named |= {a["event_id"] for a in response.json()["answers"] if a["event_id"]}
        page = await _events(http, "ta:stuck", limit=100)
    assert named == {e.id for e in page.events}
    stuck = {series.data.feature_names[c] for c in channels}
    during = [e for e in page.events if start - 10 <= e.first_reading + start - 80 < stop]
    assert during, "no event on the stuck sensor"
    carried = [s for s in during[0].top_sensors if s.feature in stuck]
    assert carried
    assert carried[0].why is not None  # the time-aware model's reason, e.g. "flat for ..."
    assert carried[0].peak_z is not None
    assert max(carried[0].peak_z, key=carried[0].peak_z.__getitem__) == "flat"
    for event in page.events:
        for sensor in event.top_sensors:
            assert sensor.expected_low < sensor.expected_high
            assert sensor.peak_z is not None
            assert set(sensor.peak_z) == {"level", "flat", "shift", "residual", "residual_mean"}


async def test_a_reading_whose_scoring_fails_is_kept_in_the_window(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading whose scoring fails is in the window all the same, whether the store
    appended it first or was to send it with the alarm update (Redis, a known stream)."""
    n = len((await http.get("/model/info")).json()["feature_names"])
    for t in (1.0, 2.0, 3.0):  # the stream is known to this replica after its first appends
        body = {"timestamps": [t], "readings": [[0.1 * t] * n]}
        assert (await http.post("/streams/s/readings", json=body)).status_code == 200

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise InvalidReadingsError("readings are too extreme to be scored")

    monkeypatch.setattr(streamplane, "_score_sync", refuse)
    body = {"timestamps": [4.0], "readings": [[0.4] * n]}
    refused = await http.post("/streams/s/readings", json=body)
    assert refused.status_code == 422, refused.text
    monkeypatch.undo()
    state = (await http.get("/streams/s")).json()
    assert state["total"] == 4
    again = await http.post("/streams/s/readings", json=body)
    assert again.status_code == 409  # its timestamp is taken: it was appended
