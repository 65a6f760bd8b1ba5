"""Two (and three) real server processes sharing one throwaway Redis: a threshold revision
made on one is served by the others; one that cannot load it keeps its model and says so;
Redis killed, the admin call still succeeds locally and the announcement goes out later."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from e2e_service import eventually
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.testing import RedisServer, ServerProcess, running_server, throwaway_redis
from api_testing import NORMAL
from factories import fit_tiny_artifact


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path) as server:
        yield server


def _artifacts(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    fit_tiny_artifact(root)  # tiny-1, LATEST
    return root


def _env(artifacts: Path, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts),
        "ANOMALY_INFERENCE_BACKEND": "numpy",
        "ANOMALY_REDIS_URL": redis_url,
        "ANOMALY_REVISION_PREFIX": "e2e:model:",
        "ANOMALY_REVISION_RETRY_S": "0.5",
        **extra,
    }


def _workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def _metric(server: ServerProcess, name: str, **labels: str) -> float | None:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def _version(server: ServerProcess) -> str:
    version: str = httpx.get(f"{server.url}/model/info", timeout=10).json()["version"]
    return version


def _subscribed(server: ServerProcess) -> bool:
    revisions = httpx.get(f"{server.url}/health", timeout=10).json()["revisions"]
    return bool(revisions["subscribed"])


def _move_thresholds(server: ServerProcess, new_version: str) -> httpx.Response:
    body = {"target_fpr": 0.05, "new_version": new_version}
    return httpx.post(f"{server.url}/admin/thresholds", json=body, timeout=30)


@contextmanager
def _two_replicas(
    tmp_path: Path, redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, str]]]:
    """Replicas a and b on one Redis and one shared artifact directory, both subscribed;
    also their environment, for a third replica."""
    env = _env(_artifacts(tmp_path, "shared"), redis_url)
    with (
        running_server(_workdir(tmp_path, "a"), env) as a,
        running_server(_workdir(tmp_path, "b"), env) as b,
    ):
        eventually(lambda: _subscribed(a) and _subscribed(b), "both subscribed")
        yield a, b, env


def test_a_revision_made_on_one_replica_is_served_by_all(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with _two_replicas(tmp_path, redis_server.url) as (a, b, env):
        moved = _move_thresholds(a, "tiny-1-f05")
        assert moved.status_code == 200, moved.text
        assert moved.json()["announced"] is True
        assert moved.json()["model_version"] == "tiny-1-f05"

        eventually(lambda: _version(b) == "tiny-1-f05", "b serves the revision")
        answer = httpx.post(f"{b.url}/predict", json={"features": NORMAL}, timeout=10)
        assert answer.json()["model_version"] == "tiny-1-f05"
        assert _metric(b, "anomaly_model_revisions_total", result="followed") == 1
        assert _metric(a, "anomaly_model_announcements_total", result="sent") == 1

        # a rollback by name (not LATEST) reaches the others too
        back = httpx.post(f"{b.url}/admin/reload", params={"version": "tiny-1"}, timeout=30)
        assert back.status_code == 200, back.text
        assert back.json()["announced"] is True
        eventually(lambda: _version(a) == "tiny-1", "a rolled back")

        # a replica started later catches up from the last announcement: it starts on
        # LATEST (the revision; a reload does not move LATEST), then follows to tiny-1
        with running_server(_workdir(tmp_path, "c"), env) as c:
            eventually(lambda: _version(c) == "tiny-1", "c follows the last announcement")
            assert _metric(c, "anomaly_model_revisions_total", result="followed") == 1


def test_a_replica_without_the_version_keeps_its_model(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        running_server(
            _workdir(tmp_path, "a"), _env(_artifacts(tmp_path, "disk-a"), redis_server.url)
        ) as a,
        running_server(
            _workdir(tmp_path, "b"), _env(_artifacts(tmp_path, "disk-b"), redis_server.url)
        ) as b,
    ):
        eventually(lambda: _subscribed(a) and _subscribed(b), "both subscribed")
        moved = _move_thresholds(a, "tiny-1-only-a")
        assert moved.status_code == 200, moved.text
        assert moved.json()["announced"] is True

        def b_counted_it() -> bool:
            return _metric(b, "anomaly_model_revisions_total", result="failed") == 1

        eventually(b_counted_it, "b counts the version it could not load")
        assert _version(b) == "tiny-1"
        assert _version(a) == "tiny-1-only-a"
        (line,) = [r for r in b.log_records() if "not followed" in r["message"]]
        assert line["level"] == "ERROR"
        assert "tiny-1-only-a" in line["message"]
        assert "still serving 'tiny-1'" in line["message"]


def test_redis_down_the_admin_call_still_succeeds_and_is_announced_later(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with _two_replicas(tmp_path, redis_server.url) as (a, b, _):
        redis_server.kill()
        moved = _move_thresholds(a, "tiny-1-offline")
        assert moved.status_code == 200, moved.text
        assert moved.json()["announced"] is False
        assert "Redis unavailable" in moved.json()["announcement"]
        assert _version(a) == "tiny-1-offline"
        health = httpx.get(f"{a.url}/health", timeout=10).json()
        assert health["revisions"]["unsent_version"] == "tiny-1-offline"
        assert any("did not go out" in r["message"] for r in a.log_records())
        assert _version(b) == "tiny-1"

        redis_server.start()  # empty, on the same port: the unsent announcement goes now
        eventually(lambda: _version(b) == "tiny-1-offline", "b follows once Redis is back")
        health = httpx.get(f"{a.url}/health", timeout=10).json()
        assert health["revisions"]["unsent_version"] is None
