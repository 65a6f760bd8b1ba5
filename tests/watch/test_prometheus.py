"""The Prometheus source end to end: a real Prometheus scraping a test exporter (and the
watcher), the watcher reading it back with range queries."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import pytest
from watch_helpers import Recorder, prometheus_config, scrape, until, value
from watch_servers import (
    SCRAPE_S,
    Exporter,
    PrometheusServer,
    free_port,
    start_prometheus,
    stop,
    wait_for_samples,
)

from anomaly_api.config import Settings
from anomaly_api.watch.runner import Job, Watcher
from anomaly_api.watch.scoring import WatchScorer
from anomaly_api.watch.sources import SourceError
from anomaly_api.watch.watermark import FileWatermarks

pytestmark = pytest.mark.process

INFER_EVERY_S = 1.0


async def test_a_stuck_sensor_is_flagged_in_metrics_and_back_through_promql(
    tmp_path: Path, tiny_artifacts_dir: Path, exporter: Exporter
) -> None:
    port = free_port()
    server = start_prometheus(tmp_path, {"exporter": exporter.port, "watcher": port})
    watcher = Watcher(
        prometheus_config(server.url, tmp_path, tiny_artifacts_dir, port=port), Settings()
    )
    task = asyncio.create_task(watcher.run())
    try:
        wait_for_samples(server.url, "sensor_value", 16)

        async def flag() -> float | None:
            return value(await scrape(port), "anomaly_is_anomaly", stream="pumps.p1")

        await until(lambda: _is(flag, 0.0))  # scored, normal
        exporter.stuck.add("p1")
        in_metrics = await until(lambda: _is(flag, 1.0))
        assert in_metrics <= 2 * INFER_EVERY_S + SCRAPE_S + 0.5  # + the scoring itself
        samples = await scrape(port)
        assert value(samples, "anomaly_is_anomaly", stream="pumps.p2") == 0.0
        assert value(samples, "anomaly_expected_upper", stream="pumps.p1", channel="f3") < 7.0

        async def promql() -> bool:
            async with httpx.AsyncClient() as client:
                answer = await client.get(
                    f"{server.url}/api/v1/query",
                    params={"query": 'anomaly_is_anomaly{stream="pumps.p1", pump="p1"} == 1'},
                )
            return bool(answer.json()["data"]["result"])

        await until(promql, limit_s=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stop(server.process)


async def _is(read: object, expected: float) -> bool:
    return await read() == expected  # type: ignore[operator]


def _job(tmp_path: Path, url: str, artifacts: Path) -> tuple[Job, Recorder, WatchScorer]:
    config = prometheus_config(url, tmp_path, artifacts)
    scorer = WatchScorer(Settings(), artifacts)
    watcher = Watcher(config, Settings())
    job = Job(config.jobs[0], scorer, watcher.metrics, FileWatermarks(tmp_path / "state", "pumps"))
    recorder = Recorder()
    job.sinks = [recorder]
    return job, recorder, scorer


async def test_a_restart_scores_every_reading_once(
    tmp_path: Path, tiny_artifacts_dir: Path, prometheus: PrometheusServer
) -> None:
    wait_for_samples(prometheus.url, "sensor_value", 16)
    first, recorded_first, scorer = _job(tmp_path, prometheus.url, tiny_artifacts_dir)
    recorded_first.fail_on = "pumps.p2"  # dies after p1 was scored and written
    await asyncio.sleep(SCRAPE_S)  # a full step after the first scrape: readings to score
    with pytest.raises(RuntimeError, match="dies here"):
        await first.tick(time.time())
    await first.close()
    await scorer.close()
    assert recorded_first.timestamps("pumps.p1")
    assert not recorded_first.timestamps("pumps.p2")
    await asyncio.sleep(3 * SCRAPE_S)
    again, recorded_again, scorer = _job(tmp_path, prometheus.url, tiny_artifacts_dir)
    await again.tick(time.time())
    await asyncio.sleep(2 * SCRAPE_S)
    await again.tick(time.time())
    await again.close()
    await scorer.close()
    for stream in ("pumps.p1", "pumps.p2"):
        stamps = recorded_first.timestamps(stream) + recorded_again.timestamps(stream)
        assert stamps == sorted(set(stamps)), "a reading was scored twice"
        steps = {round(b - a, 6) for a, b in itertools.pairwise(stamps)}
        assert steps == {1.0}, "a reading was skipped"
    assert recorded_again.timestamps("pumps.p1")[0] == recorded_first.timestamps("pumps.p1")[-1] + 1


async def test_partial_scrapes_are_gaps(
    tmp_path: Path, tiny_artifacts_dir: Path, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    wait_for_samples(prometheus.url, "sensor_value", 16)
    exporter.missing.add("p2")  # p2's f7 goes stale from the next scrape on
    await asyncio.sleep(3 * SCRAPE_S)
    job, recorded, scorer = _job(tmp_path, prometheus.url, tiny_artifacts_dir)
    await job.tick(time.time())
    await job.close()
    await scorer.close()
    gaps = job.metrics.readings.labels("pumps", "gap")._value.get()
    assert gaps >= 2
    assert len(recorded.timestamps("pumps.p2")) + gaps == len(recorded.timestamps("pumps.p1"))


async def test_an_unreachable_prometheus_is_counted_and_moves_nothing(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    job, _, scorer = _job(tmp_path, f"http://127.0.0.1:{free_port()}", tiny_artifacts_dir)
    with pytest.raises(SourceError, match="unreachable"):
        await job.tick(time.time())
    await job.close()
    await scorer.close()
    assert not (tmp_path / "state" / "pumps.json").exists()

    config = prometheus_config(f"http://127.0.0.1:{free_port()}", tmp_path, tiny_artifacts_dir)
    watcher = Watcher(config, Settings())
    task = asyncio.create_task(watcher.run())

    async def counted() -> bool:
        errors = watcher.metrics.source_errors.labels("pumps")._value.get()
        return bool(errors >= 2)

    try:
        await until(counted, limit_s=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_error_answer_is_a_source_error(
    tmp_path: Path, tiny_artifacts_dir: Path, prometheus: PrometheusServer
) -> None:
    job, _, scorer = _job(tmp_path, prometheus.url, tiny_artifacts_dir)
    assert job.prometheus is not None
    job.prometheus.config = job.prometheus.config.model_copy(update={"query": "sensor_value{"})
    with pytest.raises(SourceError, match=r"prometheus answered 400: .*parse error"):
        await job.tick(time.time())
    await job.close()
    await scorer.close()


async def test_backfill_scores_a_past_period_without_touching_the_watermark(
    tmp_path: Path, tiny_artifacts_dir: Path, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    exporter.stuck.add("p1")
    wait_for_samples(prometheus.url, "sensor_value", 16)
    await asyncio.sleep(4 * SCRAPE_S)
    end = time.time()
    config = prometheus_config(prometheus.url, tmp_path, tiny_artifacts_dir)
    watcher = Watcher(config, Settings())
    counts = await watcher.backfill(end - 3, end)
    assert counts == {"pumps": 8}  # 4 steps (end-3 .. end) x 2 pumps
    assert not (tmp_path / "state" / "pumps.json").exists()
