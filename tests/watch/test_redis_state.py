"""With Redis configured, the watcher's streams are the service's (same store, same keys)
and its watermarks live in a Redis hash."""

from __future__ import annotations

import uuid
from pathlib import Path

from redis.asyncio import Redis

from anomaly_api.config import Settings
from anomaly_api.service.streams import RedisStreamStore
from anomaly_api.watch.config import ModelRef, parse_watch_config
from anomaly_api.watch.runner import Watcher
from anomaly_api.watch.scoring import Readings
from anomaly_api.watch.watermark import RedisWatermarks
from factories import TINY_FEATURES

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_watermarks_round_trip_in_a_redis_hash() -> None:
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test-watch-{uuid.uuid4().hex[:8]}:"
    marks = RedisWatermarks(redis, prefix, "pumps")
    assert await marks.load() == {}
    await marks.save({"": 1_700_000_015.0, "pumps.p1": 1_700_000_000.5})
    assert await RedisWatermarks(redis, prefix, "pumps").load() == {
        "": 1_700_000_015.0,
        "pumps.p1": 1_700_000_000.5,
    }
    await redis.delete(marks.key)
    await redis.aclose()


async def test_the_watchers_streams_are_in_the_services_redis_store(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    prefix = f"test-watch-{uuid.uuid4().hex[:8]}:"
    settings = Settings(redis_url=REDIS_URL, stream_prefix=prefix)
    config = parse_watch_config(
        {
            "artifacts_dir": str(tiny_artifacts_dir),
            "state": "redis",
            "jobs": [{"name": "plant", "source": {"mqtt": {"topics": ["plant/+/r"]}}}],
        }
    )
    watcher = Watcher(config, settings)
    assert isinstance(watcher.watermarks_for("plant"), RedisWatermarks)
    rows = [dict.fromkeys(TINY_FEATURES, 0.1) for _ in range(4)]
    batch = Readings("plant.pump1", {"topic": "plant/pump1/r"}, [1e9 + i for i in range(4)], rows)
    outcome = await watcher.scorer.score("plant", ModelRef(), batch)
    assert outcome.scored == 4
    await watcher.close()
    service_store = RedisStreamStore.from_settings(settings)  # what the service would open
    found = await service_store.get("plant.pump1")
    assert found is not None
    assert found.total == 4
    assert found.last_timestamp == 1e9 + 3
    await service_store.delete("plant.pump1")
    await service_store.close()


async def test_file_marks_noted_after_the_last_save_survive_a_kill(tmp_path: Path) -> None:
    from anomaly_api.watch.watermark import FileWatermarks

    marks = FileWatermarks(tmp_path, "pumps")
    await marks.save({"": 10.0, "pumps.p1": 10.0, "pumps.p2": 10.0})
    await marks.note("pumps.p1", 12.0)  # the run is killed after p1, before the save
    with marks.journal.open("a") as handle:
        handle.write('["pumps.p2", 1')  # and mid-way through p2's line
    restarted = FileWatermarks(tmp_path, "pumps")
    assert await restarted.load() == {"": 10.0, "pumps.p1": 12.0, "pumps.p2": 10.0}
    await restarted.save({"": 13.0, "pumps.p1": 13.0, "pumps.p2": 13.0})
    assert not restarted.journal.exists()
    assert await FileWatermarks(tmp_path, "pumps").load() == {
        "": 13.0,
        "pumps.p1": 13.0,
        "pumps.p2": 13.0,
    }
