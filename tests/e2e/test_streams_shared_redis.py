"""A stream split across two real server processes sharing one throwaway Redis answers as
one process does; Redis killed -> streams fail open to process memory, /health degraded,
no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.data.timeseries import TimeSeriesDataset, synthetic_timeseries
from anomaly_api.testing import RedisServer, running_server, throwaway_redis
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED, fit_time_aware_artifact

START = 3000
N_POSTS = 20
PER_POST = 4  # 80 readings: warm-up (59) and 21 full windows


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ta-serve")
    fit_time_aware_artifact(root)
    return root


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path) as server:
        yield server


def _env(artifacts: Path, redis_url: str | None) -> dict[str, str]:
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts),
        "ANOMALY_INFERENCE_BACKEND": "numpy",
        "ANOMALY_STREAM_PREFIX": "p2test:stream:",
    }
    if redis_url:
        env["ANOMALY_REDIS_URL"] = redis_url
    return env


def _bodies(series: TimeSeriesDataset) -> list[dict[str, Any]]:
    bodies = []
    for k in range(N_POSTS):
        rows = slice(START + k * PER_POST, START + (k + 1) * PER_POST)
        bodies.append(
            {
                "timestamps": series.timestamps[rows].tolist(),
                "readings": series.data.X[rows].tolist(),
            }
        )
    return bodies


def _answers(responses: list[httpx.Response]) -> list[tuple[Any, ...]]:
    out = []
    for response in responses:
        assert response.status_code == 200, response.text
        for a in response.json()["answers"]:
            out.append((a["timestamp"], a["is_anomaly"], a["anomaly_score"], a["warming_up"]))
    return out


def test_two_processes_share_one_stream(
    artifacts: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    bodies = _bodies(series)
    env = _env(artifacts, redis_server.url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_server(tmp_path / "a", env) as a,
        running_server(tmp_path / "b", env) as b,
        httpx.Client(timeout=30) as http,
    ):
        split = [
            http.post(f"{(a if k % 2 == 0 else b).url}/streams/split/readings", json=body)
            for k, body in enumerate(bodies)
        ]
        alone = [http.post(f"{a.url}/streams/alone/readings", json=body) for body in bodies]
        assert _answers(split) == _answers(alone)
        assert split[-1].json()["stream"]["backend"] == "redis"
        assert split[-1].json()["stream"]["readings_in_window"] == 60
        state_a = http.get(f"{a.url}/streams/split").json()
        state_b = http.get(f"{b.url}/streams/split").json()
        assert state_a["total"] == state_b["total"] == N_POSTS * PER_POST
        # the other process refuses a duplicate of the last reading the first one took
        again = http.post(f"{b.url}/streams/split/readings", json=bodies[-2])
        assert again.status_code == 409

        # Redis gone: streams fail open to each process's memory, health says so, no 5xx
        redis_server.kill()
        statuses = [
            http.post(f"{a.url}/streams/after/readings", json=body).status_code
            for body in bodies[:3]
        ]
        assert statuses == [200, 200, 200]
        health = http.get(f"{a.url}/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["streams"] == {"backend": "redis", "ok": False}
        degraded = http.post(f"{a.url}/streams/after/readings", json=bodies[3]).json()
        assert degraded["stream"]["degraded"] is True
        assert degraded["stream"]["total"] == 4 * PER_POST
        state = http.get(f"{a.url}/streams/after")
        assert state.status_code == 200
        assert state.json()["degraded"] is True
        assert http.post(f"{a.url}/predict/window", json=bodies[0]).status_code == 200
