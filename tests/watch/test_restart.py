"""Killing the watcher process mid-job (SIGKILL) and starting it again scores every reading
exactly once: real processes, a real Prometheus, the streams in the shared Redis."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from watch_helpers import scrape, until, value
from watch_servers import SCRAPE_S, PrometheusServer, free_port, wait_for_port, wait_for_samples

from anomaly_api.config import Settings
from anomaly_api.service.streams import RedisStreamStore
from anomaly_api.testing import clean_env
from anomaly_api.watch.watermark import FileWatermarks

pytestmark = pytest.mark.process

REDIS_URL = "redis://127.0.0.1:6379/0"


def start_watcher(config: Path, prefix: str) -> subprocess.Popen[bytes]:
    env = clean_env({"ANOMALY_REDIS_URL": REDIS_URL, "ANOMALY_STREAM_PREFIX": prefix})
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly_api.cli.main", "watch", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def first_complete_step(url: str, pump: str, end: float) -> float:
    """The first timestamp (1 s grid) at which Prometheus has all 8 channels of ``pump``."""
    answer = httpx.get(
        f"{url}/api/v1/query_range",
        params={
            "query": f'count(sensor_value{{pump="{pump}"}}) == 8',
            "start": end - 120,
            "end": end,
            "step": 1,
        },
    ).json()
    return float(answer["data"]["result"][0]["values"][0][0])


async def test_kill_and_restart_scores_every_reading_once(
    tmp_path: Path, tiny_artifacts_dir: Path, prometheus: PrometheusServer
) -> None:
    wait_for_samples(prometheus.url, "sensor_value", 16)
    port = free_port()
    prefix = f"test-watch-{uuid.uuid4().hex[:8]}:"
    config = tmp_path / "watch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "artifacts_dir": str(tiny_artifacts_dir),
                "state_dir": str(tmp_path / "state"),
                "metrics": {"port": port},
                "jobs": [
                    {
                        "name": "pumps",
                        "source": {
                            "prometheus": {
                                "url": prometheus.url,
                                "query": "sensor_value",
                                "channel_label": "sensor",
                                "group_by": ["pump"],
                                "step": "1s",
                                "lookback": "2m",
                            }
                        },
                        "schedule": {"infer_every": "1s"},
                    }
                ],
            }
        )
    )
    store = RedisStreamStore.from_settings(Settings(redis_url=REDIS_URL, stream_prefix=prefix))

    async def total(stream: str) -> int:
        found = await store.get(stream)
        return 0 if found is None else found.total

    async def scored_some() -> bool:
        return await total("pumps.p1") >= 3 and await total("pumps.p2") >= 3

    first = start_watcher(config, prefix)
    try:
        await until(scored_some, limit_s=60)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = {s: await total(s) for s in ("pumps.p1", "pumps.p2")}
    await asyncio.sleep(3 * SCRAPE_S)  # readings the second process must catch up on
    again = start_watcher(config, prefix)
    try:
        wait_for_port(port, 60)

        async def caught_up() -> bool:
            return all([await total(s) >= killed_at[s] + 5 for s in killed_at])

        await until(caught_up, limit_s=60)
        samples = await scrape(port)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    assert again.returncode == 0
    assert value(samples, "anomaly_watch_readings_total", outcome="late") is None  # none twice
    marks = await FileWatermarks(tmp_path / "state", "pumps").load()
    for stream, pump in (("pumps.p1", "p1"), ("pumps.p2", "p2")):
        first_ts = first_complete_step(prometheus.url, pump, marks[stream])
        expected = math.floor(marks[stream] - first_ts) + 1  # every step from the first
        assert await total(stream) == expected, stream
        await store.delete(stream)
    await store.close()
