"""Streams across model swaps, over HTTP: a threshold revision (``POST /admin/thresholds``, or
``anomaly-api tune``'s code path then a reload) keeps every stream -- its window, ``total``
and alarm state -- while a differently fitted model restarts it; the same in process memory
and in the shared Redis. A revision saved before the lineage was recorded behaves as before.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from anomaly_api.api.schemas import StreamReadingsResponse, StreamStateResponse
from anomaly_api.artifacts import MANIFEST_FILE, read_manifest
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.testing import SHARED_REDIS_URL
from anomaly_api.training.revision import tune_version
from anomaly_api.training.tuning import TargetFPR
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, open_app, stream_backend
from factories import fit_time_aware_artifact, fit_tiny_artifact

START = 8000  # inside the held-out last 20% of the synthetic stream
CHUNK = 16  # stream_max_readings
WINDOW = 60


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings for the stream store: process memory, or the shared Redis (private prefixes)."""
    with stream_backend(request.param, "stream-revisions") as settings:
        yield settings


def _chunk(series: TimeSeriesDataset, start: int, n: int = CHUNK) -> dict[str, Any]:
    return {
        "timestamps": series.timestamps[start : start + n].tolist(),
        "readings": series.data.X[start : start + n].tolist(),
    }


async def _append(
    client: httpx.AsyncClient, sid: str, body: dict[str, Any]
) -> StreamReadingsResponse:
    # Not adapted: the scores are compared with a stateless window's, which never adapts.
    response = await client.post(f"/streams/{sid}/readings", json={**body, "adapt": False})
    assert response.status_code == 200, response.text
    return StreamReadingsResponse.model_validate(response.json())


async def _state(client: httpx.AsyncClient, sid: str) -> StreamStateResponse:
    response = await client.get(f"/streams/{sid}")
    assert response.status_code == 200, response.text
    return StreamStateResponse.model_validate(response.json())


async def _feed(
    client: httpx.AsyncClient, series: TimeSeriesDataset, sid: str, start: int, n_chunks: int
) -> StreamReadingsResponse:
    answer = None
    for i in range(n_chunks):
        answer = await _append(client, sid, _chunk(series, start + CHUNK * i))
    assert answer is not None
    return answer


async def test_a_threshold_revision_keeps_the_stream_a_new_fit_restarts_it(
    ta_artifacts: Path, ta_series: TimeSeriesDataset, backend: dict[str, Any]
) -> None:
    series = ta_series
    settings = make_settings(ta_artifacts, stream_max_streams=50, **backend)
    async with open_app(settings) as (client, _):
        before = await _feed(client, series, "p1", START, 4)  # 64 readings under ta-1
        assert before.model_version == "ta-1"
        assert before.stream.backend == ("redis" if backend else "memory")
        assert (before.stream.total, before.stream.warming_up) == (64, False)
        kept_alarms = before.stream.alarms

        tuned = await client.post(
            "/admin/thresholds", json={"target_fpr": 0.002, "new_version": "ta-t1"}
        )
        assert tuned.status_code == 200, tuned.text
        after = await _append(client, "p1", _chunk(series, START + 64))
        # The served version answers; the window, total and alarm state carry on.
        assert after.model_version == "ta-t1"
        assert (after.stream.restarted, after.stream.model_changed) == (False, False)
        assert after.stream.new_stream is False
        assert after.stream.warming_up is False
        assert not any(a.warming_up for a in after.answers)
        assert (after.stream.total, after.stream.readings_in_window) == (80, WINDOW)
        assert after.stream.alarms >= kept_alarms
        # Scored from the same trailing windows as a stateless window of all 80 readings.
        window = await client.post(
            "/predict/window", json={**_chunk(series, START, 80), "mode": "all"}
        )
        assert window.status_code == 200, window.text
        assert window.json()["model_version"] == "ta-t1"
        expected = [a["anomaly_score"] for a in window.json()["answers"][-CHUNK:]]
        assert [a.anomaly_score for a in after.answers] == pytest.approx(expected)
        state = await _state(client, "p1")
        assert (state.model_version, state.total) == ("ta-t1", 80)
        assert state.alarm.readings_evaluated == 80

        # Bad inputs are refused as before and leave the stream as it was.
        repeat = await client.post("/streams/p1/readings", json=_chunk(series, START + 79, 1))
        assert_error(repeat, 409, "stream_order")
        short = _chunk(series, START + 80, 1)
        short["readings"] = [short["readings"][0][:-1]]
        assert_error(await client.post("/streams/p1/readings", json=short), 422, "invalid_features")
        assert (await _state(client, "p1")).total == 80

        # A revision of the revision (explicit threshold) still serves ta-1's fit.
        again = await client.post(
            "/admin/thresholds", json={"thresholds": {"top4_z": -9.0}, "new_version": "ta-t2"}
        )
        assert again.status_code == 200, again.text
        assert again.json()["parent_version"] == "ta-t1"
        kept = await _append(client, "p1", _chunk(series, START + 80))
        assert (kept.model_version, kept.stream.restarted, kept.stream.total) == (
            "ta-t2",
            False,
            96,
        )
        assert kept.stream.warming_up is False
        manifest = read_manifest(ta_artifacts, "ta-t2")
        assert manifest.fitted_model is not None
        assert manifest.fitted_model.version == "ta-1"

        # Another fit (same window and channels, other data): the stream restarts.
        fit_time_aware_artifact(ta_artifacts, version="ta-2", seed=4, n_rows=4000)
        reload = await client.post("/admin/reload", params={"version": "ta-2"})
        assert reload.status_code == 200, reload.text
        fresh = await _append(client, "p1", _chunk(series, START + 96))
        assert fresh.model_version == "ta-2"
        assert (fresh.stream.restarted, fresh.stream.model_changed) == (True, True)
        assert (fresh.stream.total, fresh.stream.alarms) == (CHUNK, 0)
        assert fresh.stream.warming_up is True
        assert all(a.warming_up for a in fresh.answers)
        state = await _state(client, "p1")
        assert (state.model_version, state.total, state.alarm.readings_evaluated) == (
            "ta-2",
            CHUNK,
            CHUNK,
        )


async def test_a_revision_saved_without_lineage_restarts_as_before(
    ta_artifacts: Path, ta_series: TimeSeriesDataset, backend: dict[str, Any]
) -> None:
    """A revision written before ``fitted_model`` existed is its own fitted model: serving
    it restarts the streams of its parent (as every revision did); a revision of it, which
    records it as its root, keeps them."""
    series = ta_series
    tune_version(ta_artifacts, "ta-1", TargetFPR(0.002), new_version="ta-old", make_latest=False)
    path = ta_artifacts / "ta-old" / MANIFEST_FILE
    data = json.loads(path.read_text())
    del data["fitted_model"]  # the manifest is not hashed: only the model file is
    path.write_text(json.dumps(data))
    assert read_manifest(ta_artifacts, "ta-old").fitted_model is None
    settings = make_settings(ta_artifacts, stream_max_streams=50, **backend)
    async with open_app(settings) as (client, _):
        await _feed(client, series, "p2", START, 4)
        reload = await client.post("/admin/reload", params={"version": "ta-old"})
        assert reload.status_code == 200, reload.text
        first = await _append(client, "p2", _chunk(series, START + 64))
        assert first.model_version == "ta-old"
        assert (first.stream.restarted, first.stream.model_changed) == (True, True)
        assert (first.stream.total, first.stream.warming_up) == (CHUNK, True)
        await _feed(client, series, "p2", START + 80, 3)
        state = await _state(client, "p2")
        assert (state.model_version, state.total) == ("ta-old", 64)
        tuned = await client.post("/admin/thresholds", json={"target_fpr": 0.01})
        assert tuned.status_code == 200, tuned.text
        assert read_manifest(ta_artifacts, tuned.json()["model_version"]).fitted_model is not None
        kept = await _append(client, "p2", _chunk(series, START + 128))
        assert kept.model_version == tuned.json()["model_version"]
        assert (kept.stream.restarted, kept.stream.warming_up, kept.stream.total) == (
            False,
            False,
            80,
        )


async def test_a_revision_keeps_the_alarm_state_of_a_point_wise_stream(
    tmp_path: Path, tiny_artifacts_dir: Path, backend: dict[str, Any]
) -> None:
    """k = 2 of 3 readings: one anomaly before the revision and one after raise the alarm,
    because the stream's alarm state survived the revision; another fit starts a fresh one."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    policy = {"alarm_min_anomalies": 2, "alarm_window": 3, "alarm_cooldown": 0}
    async with open_app(make_settings(artifacts, **policy, **backend)) as (client, _):

        async def send(t: float, row: list[float]) -> StreamReadingsResponse:
            return await _append(client, "pw-1", {"timestamps": [t], "readings": [row]})

        first = await send(0.0, ANOMALOUS)
        assert first.answers[0].is_anomaly
        assert not first.answers[0].alarm
        tuned = await client.post("/admin/thresholds", json={"target_fpr": 0.05})
        assert tuned.status_code == 200, tuned.text
        second = await send(1.0, ANOMALOUS)
        assert second.model_version == tuned.json()["model_version"] != "tiny-1"
        assert (second.stream.restarted, second.stream.total) == (False, 2)
        assert second.answers[0].is_anomaly
        assert second.answers[0].alarm
        assert second.stream.alarms == 1
        state = await _state(client, "pw-1")
        assert (state.alarm.alarms, state.alarm.readings_evaluated) == (1, 2)

        fit_tiny_artifact(artifacts, "tiny-2", seed=1)
        assert (await client.post("/admin/reload", params={"version": "tiny-2"})).status_code == 200
        third = await send(2.0, ANOMALOUS)
        assert (third.stream.restarted, third.stream.model_changed) == (True, True)
        assert (third.stream.total, third.stream.alarms) == (1, 0)
        assert not third.answers[0].alarm  # a fresh state: one anomaly is not two
        normal = await send(3.0, NORMAL)
        assert normal.stream.total == 2


async def test_a_revision_announced_over_redis_keeps_the_stream_on_the_other_replica(
    ta_artifacts: Path, ta_series: TimeSeriesDataset
) -> None:
    """Two replicas on one Redis and one artifact directory: a stream fed through one, a
    revision made on it, the next readings sent to the other once it follows."""
    prefix = f"test:stream-revisions:{uuid.uuid4().hex}:"
    shared = {
        "redis_url": SHARED_REDIS_URL,
        "redis_timeout_s": 2.0,
        "stream_prefix": f"{prefix}s:",
        "cache_prefix": f"{prefix}c:",
        "revision_prefix": f"{prefix}r:",
        "stream_max_streams": 50,
    }
    try:
        async with (
            open_app(make_settings(ta_artifacts, **shared)) as (one, _),
            open_app(make_settings(ta_artifacts, **shared)) as (two, _),
        ):
            await _feed(one, ta_series, "p4", START, 4)
            tuned = await one.post("/admin/thresholds", json={"target_fpr": 0.002})
            assert tuned.status_code == 200, tuned.text
            assert tuned.json()["announced"] is True, tuned.json()
            revision = tuned.json()["model_version"]
            deadline = time.monotonic() + 30
            while (await two.get("/model/info")).json()["version"] != revision:
                assert time.monotonic() < deadline, "the other replica did not follow"
                await asyncio.sleep(0.05)
            after = await _append(two, "p4", _chunk(ta_series, START + 64))
        assert after.model_version == revision
        assert (after.stream.restarted, after.stream.warming_up) == (False, False)
        assert (after.stream.total, after.stream.backend) == (80, "redis")
    finally:
        with redis.Redis.from_url(SHARED_REDIS_URL) as client:
            stale = list(client.scan_iter(match=prefix + "*", count=1000))
            if stale:
                client.delete(*stale)
