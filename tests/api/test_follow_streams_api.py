"""A model with the ``follow`` feature served over streams: each store answers a stream
the same, bit for bit; ``GET`` reports the followed state, ``"follow": false`` leaves it,
``DELETE`` resets it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.detection.following import FOLLOW_SPREAD, advance, follow_alpha
from api_testing import assert_error, make_settings, serve_app, stream_backend
from factories import TIME_AWARE_SEED

BATCHES = (1, 1, 2, 1, 5, 1, 1, 3, 1, 1)


def _readings(n: int, start: int = 3000) -> tuple[list[float], list[list[float]]]:
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=start + n)
    rows = slice(start, start + n)
    return series.timestamps[rows].tolist(), series.data.X[rows].tolist()


async def _append(
    http: httpx.AsyncClient, ts: list[float], X: list[list[float]], **extra: Any
) -> list[dict[str, Any]]:
    response = await http.post(
        "/streams/s/readings", json={"timestamps": ts, "readings": X, "top_k": 3, **extra}
    )
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["answers"]
    return answers


async def _served(artifacts: Path, backend: str, n_before: int) -> list[dict[str, Any]]:
    """``BATCHES`` after ``n_before`` readings one by one, on ``backend``; every answer."""
    ts, X = _readings(n_before + sum(BATCHES))
    answers = []
    with stream_backend(backend, "follow") as store:
        async with serve_app(make_settings(artifacts, **store)) as http:
            for i in range(n_before):
                answers += await _append(http, ts[i : i + 1], X[i : i + 1])
            at = n_before
            for n in BATCHES:
                answers += await _append(http, ts[at : at + n], X[at : at + n])
                at += n
    return answers


async def test_memory_and_redis_answer_a_stream_bit_for_bit(ta_follow_artifacts_dir: Path) -> None:
    memory = await _served(ta_follow_artifacts_dir, "memory", 70)
    redis = await _served(ta_follow_artifacts_dir, "redis", 70)
    assert memory == redis  # JSON floats: the shortest repr, equal only for the same bits


async def test_get_reports_the_state_follow_false_leaves_it_and_delete_resets_it(
    ta_follow_artifacts_dir: Path,
) -> None:
    artifact = load_any_artifact(ta_follow_artifacts_dir)
    assert isinstance(artifact, TimeAwareArtifact)
    model = artifact.model
    names = artifact.manifest.feature_names
    alpha = follow_alpha(model.follow_memory)
    ts, X = _readings(90)
    async with serve_app(make_settings(ta_follow_artifacts_dir)) as http:
        for i in range(80):
            await _append(http, ts[i : i + 1], X[i : i + 1])
        state = advance(model.follow_start_, X[:80], alpha)
        got = (await http.get("/streams/s")).json()["follow"]
        assert got["memory"] == model.follow_memory == 100
        assert got["level"] == dict(zip(names, state.level, strict=True))
        assert got["spread"] == {
            n: FOLLOW_SPREAD * d for n, d in zip(names, state.deviation, strict=True)
        }
        # not followed: judged against the training level and spread, the state left
        answers = await _append(http, ts[80:82], X[80:82], follow=False, adapt=False)
        assert (await http.get("/streams/s")).json()["follow"] == got
        held = np.asarray(X[80 - model.window + 1 : 82])
        times = np.asarray(ts[80 - model.window + 1 : 82])
        out = model.score_window(times, held, last=2, learn=False)
        assert [a["anomaly_score"] for a in answers] == out.anomaly_score.tolist()
        followed = model.score_window(times, held, last=2, follow=state)
        assert out.anomaly_score.tolist() != followed.anomaly_score.tolist()
        # a request's own follow flag must be a boolean
        bad = await http.post(
            "/streams/s/readings",
            json={"timestamps": ts[82:83], "readings": X[82:83], "follow": "no"},
        )
        assert_error(bad, 422, "invalid_request", "follow")
        assert (await http.delete("/streams/s")).status_code == 204
        await _append(http, ts[85:86], X[85:86])
        fresh = (await http.get("/streams/s")).json()["follow"]
        after = advance(model.follow_start_, X[85:86], alpha)
        assert fresh["level"] == dict(zip(names, after.level, strict=True))


@pytest.mark.parametrize("memory", [-1, "x"])
async def test_the_training_api_refuses_a_bad_follow_memory(tmp_path: Path, memory: object) -> None:
    async with serve_app(make_settings(tmp_path)) as http:
        response = await http.post(
            "/models/m/versions",
            params={"window": 20, "follow_memory": memory},
            json={"synthetic": True},
        )
    assert response.status_code in (400, 422), response.text
    assert "follow_memory" in response.text
