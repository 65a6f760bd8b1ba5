"""Stream endpoints in-process: /predict/window and /streams/{id} with a time-aware model
(the synthetic stream) and with the tiny point-wise model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from pydantic import BaseModel

from anomaly_api.api.schemas import StreamReadingsResponse, StreamStateResponse, WindowResponse
from anomaly_api.data.synthetic import SENSOR_CHANNELS
from anomaly_api.data.timeseries import TimeSeriesDataset, synthetic_timeseries
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, serve_app
from factories import (
    TIME_AWARE_ROWS,
    TIME_AWARE_SEED,
    synthetic_segments,
)

WINDOW = 60  # the default time-aware window


@pytest.fixture(scope="session")
def series() -> TimeSeriesDataset:
    return synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ta(ta_artifacts_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(ta_artifacts_dir, stream_max_streams=50)) as http:
        yield http


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pw(tiny_artifacts_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(tiny_artifacts_dir)) as http:
        yield http


def _window_body(series: TimeSeriesDataset, rows: slice, mode: str = "last") -> dict[str, Any]:
    return {
        "timestamps": series.timestamps[rows].tolist(),
        "readings": series.data.X[rows].tolist(),
        "mode": mode,
    }


pytestmark = pytest.mark.asyncio(loop_scope="session")


def _valid(model: type[BaseModel], data: Any) -> Any:
    """``data`` validated against the documented response model (attribute access)."""
    return model.model_validate(data)


async def test_time_aware_model_refuses_single_readings(
    ta: httpx.AsyncClient, series: TimeSeriesDataset
) -> None:
    one = series.data.X[0].tolist()
    response = await ta.post("/predict", json={"features": one})
    assert_error(response, 422, "model_is_time_aware", "/predict/window")
    batch = await ta.post("/predict/batch", json={"observations": [{"features": one}]})
    assert_error(batch, 422, "model_is_time_aware", "/streams/")


async def test_window_answers_last_or_all(ta: httpx.AsyncClient, series: TimeSeriesDataset) -> None:
    rows = slice(1000, 1000 + WINDOW + 9)
    last = await ta.post("/predict/window", json=_window_body(series, rows))
    assert last.status_code == 200, last.text
    body = _valid(WindowResponse, last.json())
    assert body.model_kind == "time-aware"
    assert body.window == WINDOW
    assert len(body.answers) == 1
    assert body.answers[0].index == WINDOW + 8
    assert not body.answers[0].warming_up
    every = await ta.post("/predict/window", json=_window_body(series, rows, "all"))
    answers = _valid(WindowResponse, every.json()).answers
    assert [a.index for a in answers] == list(range(WINDOW + 9))
    assert [a.warming_up for a in answers] == [True] * (WINDOW - 1) + [False] * 10
    assert answers[-1].anomaly_score == pytest.approx(body.answers[0].anomaly_score, abs=1e-12)
    # ISO 8601 strings give the same answer as epoch seconds
    iso = _window_body(series, rows)
    iso["timestamps"] = [f"{np.datetime64(int(t), 's')}Z" for t in series.timestamps[rows]]
    same = await ta.post("/predict/window", json=iso)
    assert same.json()["answers"][0]["anomaly_score"] == body.answers[0].anomaly_score


async def test_short_window_warms_up(ta: httpx.AsyncClient, series: TimeSeriesDataset) -> None:
    response = await ta.post("/predict/window", json=_window_body(series, slice(0, 5), "all"))
    answers = response.json()["answers"]
    assert len(answers) == 5
    assert all(a["warming_up"] for a in answers)


@pytest.mark.parametrize(
    ("kind", "why"),
    [("stuck_sensor", "flat for"), ("level_shift", ""), ("correlation_break", "relation")],
)
async def test_synthetic_segments_are_flagged_with_the_right_top_contributor(
    ta: httpx.AsyncClient, series: TimeSeriesDataset, kind: str, why: str
) -> None:
    events = [e for e in synthetic_segments() if e[0] == kind and e[1] >= WINDOW][:4]
    assert events
    detected = right = 0
    for _, start, stop, channels in events:
        rows = slice(start - WINDOW + 1, stop)
        response = await ta.post("/predict/window", json=_window_body(series, rows, "all"))
        assert response.status_code == 200, response.text
        answers = response.json()["answers"][WINDOW - 1 :]  # the segment's readings
        flagged = [a for a in answers if a["is_anomaly"]]
        if not flagged:
            continue
        detected += 1
        top = flagged[0]["contributions"][0]
        if SENSOR_CHANNELS.index(top["feature"]) in channels:
            right += 1
            assert why in top["why"]
    assert detected >= len(events) - (0 if kind == "stuck_sensor" else 1), (detected, events)
    assert right >= detected - (0 if len(events) < 4 else 1), (right, detected)


async def test_stream_warms_up_then_matches_the_window(
    ta: httpx.AsyncClient, series: TimeSeriesDataset
) -> None:
    sid = "ta-stream-1"
    start = 2000
    answers = []
    for i in range(start, start + WINDOW + 4, 4):
        rows = slice(i, i + 4)
        response = await ta.post(
            f"/streams/{sid}/readings",
            json={
                "timestamps": series.timestamps[rows].tolist(),
                "readings": series.data.X[rows].tolist(),
            },
        )
        assert response.status_code == 200, response.text
        body = _valid(StreamReadingsResponse, response.json())
        answers.extend(body.answers)
    assert body.stream.readings_in_window == WINDOW
    assert not body.stream.warming_up
    assert body.stream.total == WINDOW + 4
    assert body.stream.backend == "memory"
    assert [a.warming_up for a in answers] == [True] * (WINDOW - 1) + [False] * 5
    window = await ta.post(
        "/predict/window", json=_window_body(series, slice(start, start + WINDOW + 4), "all")
    )
    expected = [a["anomaly_score"] for a in window.json()["answers"]]
    assert [a.anomaly_score for a in answers] == pytest.approx(expected, abs=1e-9)
    state = await ta.get(f"/streams/{sid}")
    assert state.status_code == 200
    parsed = _valid(StreamStateResponse, state.json())
    assert parsed.total == WINDOW + 4
    # the store keeps window - 1 + the readings of the last call (here 4)
    assert parsed.readings_in_window == WINDOW + 3
    assert (await ta.delete(f"/streams/{sid}")).status_code == 204
    assert_error(await ta.get(f"/streams/{sid}"), 404, "stream_not_found")
    assert_error(await ta.delete(f"/streams/{sid}"), 404, "stream_not_found")


async def _state(client: httpx.AsyncClient, sid: str) -> Any:
    response = await client.get(f"/streams/{sid}")
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_feature_count", 422, "invalid_features"),
        ("nan", 400, "invalid_json"),
        ("null_value", 422, "invalid_request"),
        ("duplicate_timestamp", 409, "stream_order"),
        ("older_timestamp", 409, "stream_order"),
        ("unsorted_in_request", 409, "stream_order"),
        ("bad_timestamp", 422, "invalid_timestamps"),
        ("timestamp_count", 422, "invalid_timestamps"),
        ("too_many_readings", 422, "invalid_readings"),
        ("empty", 422, "invalid_request"),
        ("bad_stream_id", 422, "invalid_stream_id"),
    ],
)
async def test_bad_input_leaves_the_stream_unchanged(
    ta: httpx.AsyncClient, series: TimeSeriesDataset, case: str, status: int, code: str
) -> None:
    sid = f"bad-{case.replace('_', '-')}"
    await ta.delete(f"/streams/{sid}")
    t = series.timestamps[:3].tolist()
    good = {"timestamps": t[:2], "readings": series.data.X[:2].tolist()}
    assert (await ta.post(f"/streams/{sid}/readings", json=good)).status_code == 200
    before = await _state(ta, sid)
    x = series.data.X[2].tolist()
    later = t[2]
    bodies: dict[str, Any] = {
        "wrong_feature_count": {"timestamps": [later], "readings": [x[:-1]]},
        "null_value": {"timestamps": [later], "readings": [[None, *x[1:]]]},
        "duplicate_timestamp": {"timestamps": [t[1]], "readings": [x]},
        "older_timestamp": {"timestamps": [t[0] - 1], "readings": [x]},
        "unsorted_in_request": {"timestamps": [later + 600, later], "readings": [x, x]},
        "bad_timestamp": {"timestamps": ["yesterday"], "readings": [x]},
        "timestamp_count": {"timestamps": [later, later + 1], "readings": [x]},
        "too_many_readings": {
            "timestamps": [later + i for i in range(17)],
            "readings": [x] * 17,
        },
        "empty": {"timestamps": [], "readings": []},
        "bad_stream_id": {"timestamps": [later], "readings": [x]},
    }
    path = f"/streams/{sid}/readings"
    if case == "bad_stream_id":
        path = "/streams/-bad!id/readings"
    if case == "nan":
        response = await ta.post(
            path,
            content=b'{"timestamps": [%f], "readings": [[NaN, 1, 2, 3, 4, 5, 6, 7]]}' % later,
            headers={"content-type": "application/json"},
        )
    else:
        response = await ta.post(path, json=bodies[case])
    assert_error(response, status, code)
    after = await _state(ta, sid)
    before[1]["expires_in_s"] = after[1]["expires_in_s"] = 0
    assert after == before


async def test_window_merges_repeats_and_skips_a_clock_stepping_back(
    ta: httpx.AsyncClient, series: TimeSeriesDataset
) -> None:
    body = _window_body(series, slice(0, 70))
    clean = {"timestamps": list(body["timestamps"]), "readings": list(body["readings"])}
    body["timestamps"][65] = body["timestamps"][64]  # reading 65 repeats 64's time
    body["timestamps"][67] = body["timestamps"][0]  # reading 67's clock stepped back
    answer = await ta.post("/predict/window", json=body | {"mode": "all"})
    assert answer.status_code == 200, answer.text
    indices = [a["index"] for a in answer.json()["answers"]]
    assert indices == [i for i in range(70) if i not in (65, 67)]
    # the merged reading is the mean of the two; the others score as without the repeat
    merged = dict(clean)
    merged["readings"] = [
        *clean["readings"][:64],
        np.mean(clean["readings"][64:66], axis=0).tolist(),
        clean["readings"][66],
        *clean["readings"][68:],
    ]
    merged["timestamps"] = [t for i, t in enumerate(clean["timestamps"]) if i not in (65, 67)]
    expected = await ta.post("/predict/window", json=merged | {"mode": "all"})
    scores = [a["anomaly_score"] for a in answer.json()["answers"]]
    assert scores == [a["anomaly_score"] for a in expected.json()["answers"]]


async def test_window_bad_input(ta: httpx.AsyncClient, series: TimeSeriesDataset) -> None:
    body = _window_body(series, slice(0, 3))
    body["timestamps"][2] = "yesterday"
    assert_error(await ta.post("/predict/window", json=body), 422, "invalid_timestamps")
    too_many = {"timestamps": list(range(2001)), "readings": [[0.0] * 8] * 2001}
    response = await ta.post("/predict/window", json=too_many)
    assert_error(response, 422, "invalid_readings", "at most 2000")


async def test_store_full_answers_429_with_retry_after(ta_artifacts_dir: Path) -> None:
    settings = make_settings(ta_artifacts_dir, stream_max_streams=1, stream_retry_after_s=7)
    body = {"timestamps": [0.0], "readings": [[0.0] * len(SENSOR_CHANNELS)]}
    async with serve_app(settings) as http:
        assert (await http.post("/streams/a/readings", json=body)).status_code == 200
        response = await http.post("/streams/b/readings", json=body)
        assert_error(response, 429, "stream_store_full")
        assert response.headers["retry-after"] == "7"
        assert_error(await http.get("/streams/b"), 404, "stream_not_found")


async def test_point_wise_model_answers_streams(pw: httpx.AsyncClient) -> None:
    body = {"timestamps": ["2026-11-29T12:00:00Z", 1_795_953_900], "readings": [NORMAL, ANOMALOUS]}
    response = await pw.post("/streams/pw-1/readings", json=body)
    assert response.status_code == 200, response.text
    parsed = _valid(StreamReadingsResponse, response.json())
    assert parsed.model_kind == "point-wise"
    assert [a.warming_up for a in parsed.answers] == [False, False]
    assert [a.is_anomaly for a in parsed.answers] == [False, True]
    assert parsed.stream.window == 1
    assert parsed.stream.readings_in_window == 1
    predicted = await pw.post("/predict", json={"features": ANOMALOUS})
    assert parsed.answers[1].anomaly_score == predicted.json()["anomaly_score"]
    window = await pw.post("/predict/window", json=body | {"mode": "all"})
    assert [a["is_anomaly"] for a in window.json()["answers"]] == [False, True]
    again = await pw.post("/streams/pw-1/readings", json=body)
    assert_error(again, 409, "stream_order")


async def test_stream_readings_are_counted_in_the_prediction_metrics(
    pw: httpx.AsyncClient,
) -> None:
    def rows_total(text: str) -> float:
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("anomaly_predictions_total{")
        )

    before = rows_total((await pw.get("/metrics")).text)
    body = {"timestamps": [10.0, 20.0, 30.0], "readings": [NORMAL] * 3}
    assert (await pw.post("/streams/pw-metrics/readings", json=body)).status_code == 200
    after = rows_total((await pw.get("/metrics")).text)
    assert after - before == 3


async def test_health_has_a_streams_section(pw: httpx.AsyncClient) -> None:
    health = (await pw.get("/health")).json()
    assert health["streams"] == {"backend": "memory", "ok": True}


async def test_a_store_window_below_the_model_window_warms_up_instead_of_failing(
    ta_artifacts_dir: Path, series: TimeSeriesDataset
) -> None:
    settings = make_settings(ta_artifacts_dir, stream_max_window=30)
    async with serve_app(settings) as http:
        for start in range(0, 64, 16):
            rows = slice(start, start + 16)
            body = {
                "timestamps": series.timestamps[rows].tolist(),
                "readings": series.data.X[rows].tolist(),
            }
            response = await http.post("/streams/small/readings", json=body)
            assert response.status_code == 200, response.text
            assert all(a["warming_up"] for a in response.json()["answers"])
