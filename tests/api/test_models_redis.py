"""Named models with Redis: streams bound to their model in the shared store, and alias
moves followed by every replica (two apps sharing one Redis and one artifact directory)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis

from anomaly_api.testing import SHARED_REDIS_URL
from api_testing import NORMAL, make_settings, open_app_state, stream_backend
from factories import fit_pumps

ADMIN = {"X-API-Key": "admin-key-1"}


@pytest.fixture
def fleet_dir(tmp_path: Path, tiny_artifacts_dir: Path) -> Path:
    """``default`` (tiny-1) and ``pumps`` (p1 production, p2 candidate)."""
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, root)
    fit_pumps(root)
    return root


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_a_named_models_streams_live_under_its_own_redis_keys(fleet_dir: Path) -> None:
    with stream_backend("redis", "models") as extra:
        async with open_app_state(make_settings(fleet_dir, **extra)) as (http, _):
            body = {"timestamps": ["2026-11-29T12:00:00Z"], "readings": [NORMAL]}
            answer = await http.post("/models/pumps/streams/s-1/readings", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["stream"]["backend"] == "redis"
            assert (await http.get("/streams/s-1")).status_code == 404
            with redis.Redis.from_url(SHARED_REDIS_URL) as client:
                keys = {k.decode() for k in client.scan_iter(match=extra["stream_prefix"] + "*")}
            assert f"{extra['stream_prefix']}m/pumps/w:s-1" in keys
            assert f"{extra['stream_prefix']}w:s-1" not in keys


async def test_every_replica_follows_an_alias_move_and_a_rollback(fleet_dir: Path) -> None:
    with stream_backend("redis", "models-replicas") as extra:
        settings = make_settings(fleet_dir, admin_api_keys=["admin-key-1"], **extra)
        async with (
            open_app_state(settings) as (one, one_state),
            open_app_state(settings) as (two, two_state),
        ):
            channels = [one_state["revisions"], two_state["revisions"]]

            async def subscribed() -> bool:
                return all(c is not None and c.subscribed for c in channels)

            await _eventually(subscribed)

            async def served_by_two() -> str:
                answer = await two.post("/models/pumps/predict", json={"features": NORMAL})
                version: str = answer.json()["model_version"]
                return version

            assert await served_by_two() == "p1"  # loaded on the second replica
            moved = await one.post(
                "/models/pumps/aliases/production", json={"version": "p2"}, headers=ADMIN
            )
            assert moved.json()["announced"] is True, moved.text

            def two_serves(version: str) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return await served_by_two() == version

                return check

            await _eventually(two_serves("p2"))
            back = await one.post("/models/pumps/rollback", headers=ADMIN)
            assert back.json()["version"] == "p1"
            await _eventually(two_serves("p1"))
