"""Alarms in stream answers over HTTP: the default policy (settings) and a request's own,
the cool-down, the stream's alarm state, 422 for a bad policy, DELETE, the metric, and the
409's timestamps as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio

from anomaly_api.api.schemas import StreamReadingsResponse, StreamStateResponse
from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, serve_app
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED, synthetic_segments

pytestmark = pytest.mark.asyncio(loop_scope="session")

# the point-wise app's default policy: 2 anomalies within 3 readings, then 2 readings quiet
DEFAULT = {"alarm_min_anomalies": 2, "alarm_window": 3, "alarm_cooldown": 2}
SEQUENCE = [ANOMALOUS, ANOMALOUS, NORMAL, ANOMALOUS, ANOMALOUS, ANOMALOUS]
EXPECTED = [False, True, False, False, True, False]  # readings 3 and 5: in the cool-down


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pw(tiny_artifacts_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tiny_artifacts_dir, **DEFAULT)
    async with serve_app(settings) as http:
        yield http


async def _send(
    http: httpx.AsyncClient, sid: str, t0: float, rows: list[list[float]], **extra: Any
) -> httpx.Response:
    body = {"timestamps": [t0 + i for i in range(len(rows))], "readings": rows, **extra}
    return await http.post(f"/streams/{sid}/readings", json=body)


def _alarms(response: httpx.Response) -> list[bool]:
    assert response.status_code == 200, response.text
    return [a.alarm for a in StreamReadingsResponse.model_validate(response.json()).answers]


async def test_the_default_policy_alarms_then_keeps_its_cool_down(pw: httpx.AsyncClient) -> None:
    one_by_one = [
        _alarms(await _send(pw, "plant-1:a", float(i), [row])) for i, row in enumerate(SEQUENCE)
    ]
    assert [alarm for answers in one_by_one for alarm in answers] == EXPECTED
    assert _alarms(await _send(pw, "plant-1:b", 0.0, SEQUENCE)) == EXPECTED  # one request
    state = StreamStateResponse.model_validate((await pw.get("/streams/plant-1:a")).json())
    assert state.alarm.alarms == 2
    assert state.alarm.readings_evaluated == 6
    assert state.alarm.last_alarm_reading == 4
    assert state.alarm.last_alarm_timestamp == "1970-01-01T00:00:04+00:00"
    assert state.alarm.unit == "readings"


async def test_a_new_stream_is_new_not_restarted_by_a_model_change(pw: httpx.AsyncClient) -> None:
    first = (await _send(pw, "plant-2:new", 0.0, [NORMAL])).json()["stream"]
    later = (await _send(pw, "plant-2:new", 1.0, [ANOMALOUS])).json()["stream"]
    assert (first["new_stream"], first["model_changed"], first["restarted"]) == (True, False, True)
    assert (later["new_stream"], later["model_changed"], later["restarted"]) == (
        False,
        False,
        False,
    )
    assert later["alarms"] == 0


async def test_a_request_brings_its_own_policy(pw: httpx.AsyncClient) -> None:
    every = {"k": 1, "window": 1, "cooldown": 0}
    response = await _send(pw, "plant-3:own", 0.0, SEQUENCE, alarm_policy=every)
    assert _alarms(response) == [row is ANOMALOUS for row in SEQUENCE]
    assert response.json()["stream"]["alarms"] == 5
    # a policy in seconds reads the timestamps: 2 anomalies within 10 s, cool-down 100 s
    seconds = {"k": 2, "window": 10, "cooldown": 100, "unit": "seconds"}
    body = {"timestamps": [1000.0, 1005.0, 1050.0, 1055.0], "readings": [ANOMALOUS] * 4}
    answer = await pw.post("/streams/plant-3:sec/readings", json=body | {"alarm_policy": seconds})
    assert _alarms(answer) == [False, True, False, False]
    state = (await pw.get("/streams/plant-3:sec")).json()["alarm"]
    assert state["unit"] == "seconds"
    assert state["last_alarm_timestamp"] == "1970-01-01T00:16:45+00:00"


@pytest.mark.parametrize(
    ("policy", "loc"),
    [
        ({"k": 0, "window": 3, "cooldown": 0}, ["alarm_policy", "k"]),
        ({"k": 2, "window": 0, "cooldown": 0}, ["alarm_policy", "window"]),
        ({"k": 2, "window": 3, "cooldown": -1}, ["alarm_policy", "cooldown"]),
        ({"k": 2, "window": 3, "cooldown": 0, "unit": "minutes"}, ["alarm_policy", "unit"]),
        ({"k": "2", "window": 3, "cooldown": 0}, ["alarm_policy", "k"]),
        ({"k": 5, "window": 3, "cooldown": 0}, ["alarm_policy"]),
        ({"k": 2, "window": 3}, ["alarm_policy", "cooldown"]),
        ({"k": 2, "window": 3, "cooldown": 0, "every": 1}, ["alarm_policy", "every"]),
        ("3 of 5", ["alarm_policy"]),
    ],
)
async def test_a_bad_policy_is_a_422_and_changes_nothing(
    pw: httpx.AsyncClient, policy: Any, loc: list[str]
) -> None:
    sid = "plant-4:bad"
    await pw.delete(f"/streams/{sid}")
    assert _alarms(await _send(pw, sid, 0.0, [ANOMALOUS, ANOMALOUS])) == [False, True]
    before = (await pw.get(f"/streams/{sid}")).json()
    response = await _send(pw, sid, 10.0, [ANOMALOUS], alarm_policy=policy)
    assert_error(response, 422, "invalid_request")
    assert response.json()["error"]["details"][0]["loc"] == loc
    window = await pw.post(
        "/predict/window",
        json={"timestamps": [0.0], "readings": [ANOMALOUS], "alarm_policy": policy},
    )
    assert_error(window, 422, "invalid_request")
    after = (await pw.get(f"/streams/{sid}")).json()
    before["expires_in_s"] = after["expires_in_s"] = 0
    assert after == before


async def test_delete_resets_the_alarm_state(pw: httpx.AsyncClient) -> None:
    sid = "plant-5:reset"
    assert _alarms(await _send(pw, sid, 0.0, [ANOMALOUS, ANOMALOUS])) == [False, True]
    assert (await pw.delete(f"/streams/{sid}")).status_code == 204
    again = await _send(pw, sid, 10.0, [ANOMALOUS])
    assert _alarms(again) == [False]  # the anomalies before the reset are forgotten
    assert again.json()["stream"]["new_stream"]
    state = (await pw.get(f"/streams/{sid}")).json()["alarm"]
    assert (state["alarms"], state["readings_evaluated"], state["last_alarm_reading"]) == (
        0,
        1,
        None,
    )


async def test_a_window_is_evaluated_from_a_fresh_state(pw: httpx.AsyncClient) -> None:
    body = {"timestamps": [float(i) for i in range(6)], "readings": SEQUENCE, "mode": "all"}
    every = (await pw.post("/predict/window", json=body)).json()["answers"]
    assert [a["alarm"] for a in every] == EXPECTED
    assert [
        a["alarm"] for a in (await pw.post("/predict/window", json=body)).json()["answers"]
    ] == EXPECTED
    last = await pw.post("/predict/window", json=body | {"mode": "last"})
    assert [a["alarm"] for a in last.json()["answers"]] == [False]  # one answered reading, k=2
    own = body | {"mode": "last", "alarm_policy": {"k": 1, "window": 1, "cooldown": 0}}
    assert (await pw.post("/predict/window", json=own)).json()["answers"][0]["alarm"]


def _stream_alarms(text: str) -> dict[str, float]:
    prefix = 'anomaly_stream_alarms_total{stream_class="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_metrics_count_alarms_per_stream_class_with_a_cap(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, stream_max_classes=2, **DEFAULT)
    async with serve_app(settings) as http:
        before = _stream_alarms((await http.get("/metrics")).text)
        assert before == {"other": 0}  # exported from start-up
        assert _alarms(await _send(http, "plant-6:x", 0.0, SEQUENCE)) == EXPECTED
        assert _alarms(await _send(http, "plant-6:y", 0.0, SEQUENCE)) == EXPECTED
        for n in range(3):  # more classes than stream_max_classes (2)
            assert _alarms(await _send(http, f"cap{n}", 0.0, SEQUENCE)) == EXPECTED
        await _send(http, "plant-6:z", 0.0, [NORMAL])  # no alarm, nothing counted
        after = _stream_alarms((await http.get("/metrics")).text)
    assert after == {"plant-6": 4, "cap0": 2, "other": 4}


async def test_an_old_timestamp_is_echoed_as_sent(pw: httpx.AsyncClient) -> None:
    sid = "plant-7:order"
    sent = {"timestamps": ["2026-11-29T12:00:00Z"], "readings": [NORMAL]}
    assert (await pw.post(f"/streams/{sid}/readings", json=sent)).status_code == 200
    old = {"timestamps": ["2026-11-29T11:00:00Z"], "readings": [NORMAL]}
    response = await pw.post(f"/streams/{sid}/readings", json=old)
    assert_error(response, 409, "stream_order", "'2026-11-29T11:00:00Z'")
    assert "2026-11-29T12:00:00+00:00" in response.json()["error"]["message"]
    inside = {
        "timestamps": ["2026-11-29T13:00:00Z", "2026-11-29T12:30:00Z"],
        "readings": [NORMAL] * 2,
    }
    response = await pw.post(f"/streams/{sid}/readings", json=inside)
    assert_error(response, 409, "stream_order", "'2026-11-29T12:30:00Z' at reading 1")
    assert "'2026-11-29T13:00:00Z'" in response.json()["error"]["message"]
    number = await pw.post(
        f"/streams/{sid}/readings", json={"timestamps": [5.0], "readings": [NORMAL]}
    )
    assert_error(number, 409, "stream_order", "timestamp 5.0 at reading 0")


async def test_a_time_aware_stream_alarms_on_a_stuck_sensor(ta_artifacts_dir: Path) -> None:
    """The default time-aware model over a stuck-sensor segment of its synthetic stream,
    16 readings per request: the alarms are the default policy's over every answer's flag,
    warming-up readings included, and some are raised."""
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    _, start, stop, _ = next(
        e for e in synthetic_segments() if e[0] == "stuck_sensor" and e[1] > 100
    )
    policy = AlarmPolicy(k=3, window=10, cooldown=30)
    settings = make_settings(
        ta_artifacts_dir, alarm_min_anomalies=3, alarm_window=10, alarm_cooldown=30
    )
    flags: list[bool] = []
    alarms: list[bool] = []
    warming: list[bool] = []
    async with serve_app(settings) as http:
        for first in range(start - 80, stop + 16, 16):
            rows = slice(first, first + 16)
            response = await http.post(
                "/streams/ta:stuck/readings",
                json={
                    "timestamps": series.timestamps[rows].tolist(),
                    "readings": series.data.X[rows].tolist(),
                },
            )
            assert response.status_code == 200, response.text
            for answer in response.json()["answers"]:
                flags.append(answer["is_anomaly"])
                alarms.append(answer["alarm"])
                warming.append(answer["warming_up"])
        state = (await http.get("/streams/ta:stuck")).json()["alarm"]
    expected, final = policy.evaluate(AlarmState(), np.array(flags))
    assert any(warming)
    assert alarms == expected.tolist()
    assert any(alarms[80:]), "no alarm on the stuck sensor"
    assert state["alarms"] == final.alarms == sum(alarms)
    assert state["readings_evaluated"] == len(flags)
