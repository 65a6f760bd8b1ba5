"""Fit schedules against a real Prometheus: a fit trains out of process on the source's
last window, publishes a candidate, promotes it under the registry's rule, and the job's
next readings are scored by the new production version."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from watch_helpers import Recorder, prometheus_config
from watch_servers import PrometheusServer, wait_for_samples

from anomaly_api.config import Settings
from anomaly_api.registry import CANDIDATE, PRODUCTION, read_aliases, resolve_alias, set_alias
from anomaly_api.service.jobs.worker import JobSpec
from anomaly_api.watch.config import FitConfig
from anomaly_api.watch.fitting import FitBuffer, train_in_process, write_training_data
from anomaly_api.watch.runner import Watcher
from anomaly_api.watch.scoring import Readings

pytestmark = pytest.mark.process


def _fits(watcher: Watcher, outcome: str) -> float:
    return float(watcher.metrics.fits.labels("pumps", outcome)._value.get())


async def test_a_fit_publishes_a_version_and_scoring_switches_to_it(
    tmp_path: Path, tiny_artifacts_dir: Path, prometheus: PrometheusServer
) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    set_alias(artifacts, "default", CANDIDATE, "tiny-1")  # the job scores the candidate
    fit = {"every": "1h", "window": "1m", "auto_promote": True, "detectors": ["zscore", "pca"]}
    config = prometheus_config(
        prometheus.url,
        tmp_path,
        artifacts,
        step="250ms",
        fit=fit,
        model={"name": "default", "alias": CANDIDATE},
    )
    watcher = Watcher(config, Settings())
    await watcher.start()
    job = watcher.jobs[0]
    recorder = Recorder()
    job.sinks = [recorder]
    try:
        wait_for_samples(prometheus.url, "sensor_value", 16)
        await asyncio.sleep(8)  # 2 pumps x 4 steps a scrape: > 50 rows to train on
        await job.tick(time.time())
        assert {b.model_version for b in recorder.batches} == {"tiny-1"}

        # unlabelled data has no held-out F1: the registry's rule keeps production
        assert await job.fit(time.time()) == "candidate"
        aliases = read_aliases(artifacts, "default").aliases
        fitted = aliases[CANDIDATE]
        assert fitted != "tiny-1"
        assert aliases[PRODUCTION] == "tiny-1"
        await asyncio.sleep(1.5)
        recorder.batches.clear()
        assert await job.tick(time.time()) > 0
        assert {b.model_version for b in recorder.batches} == {fitted}
        assert _fits(watcher, "candidate") == 1.0
        assert not list((artifacts / ".staging").iterdir())
    finally:
        await watcher.close()

    # a model without a production version: the fit's version becomes production
    fit["model"] = "pumps-fit"
    config = prometheus_config(prometheus.url, tmp_path, artifacts, step="250ms", fit=fit)
    watcher = Watcher(config, Settings())
    await watcher.start()
    try:
        assert await watcher.jobs[0].fit(time.time()) == "promoted"
        assert resolve_alias(artifacts, "pumps-fit", PRODUCTION) != fitted
        assert _fits(watcher, "promoted") == 1.0
    finally:
        await watcher.close()


async def test_a_fit_without_data_is_skipped_and_counted(
    tmp_path: Path, tiny_artifacts_dir: Path, prometheus: PrometheusServer
) -> None:
    fit = {"every": "1h", "window": "1m"}
    config = prometheus_config(prometheus.url, tmp_path, tiny_artifacts_dir, fit=fit)
    watcher = Watcher(config, Settings())
    await watcher.start()
    try:
        long_ago = time.time() - 30 * 86400  # nothing scraped then
        assert await watcher.jobs[0].fit(long_ago) == "skipped"
        assert _fits(watcher, "skipped") == 1.0
    finally:
        await watcher.close()


def test_the_mqtt_fit_buffer_is_bounded_and_windowed() -> None:
    buffer = FitBuffer(max_readings=3)
    buffer.add(Readings("plant.a", {}, [1.0, 2.0], [{"x": 1.0}, {"x": 2.0}]))
    buffer.add(Readings("plant.b", {}, [3.0, 4.0], [{"x": 3.0}, {"x": 4.0}]))
    assert len(buffer) == 3  # the oldest went
    found = {r.stream_id: list(r.timestamps) for r in buffer.since(2.5)}
    assert found == {"plant.b": [3.0, 4.0]}


async def test_a_stopped_watcher_ends_its_training_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    batch = Readings(
        "plant.a",
        {},
        list(range(20_000)),
        [{"x": float(x), "y": float(y)} for x, y in rng.normal(size=(20_000, 2))],
    )
    data = tmp_path / "fit.csv"
    channels = write_training_data(data, [batch])
    request = replace(FitConfig(every="1h", window="1d").request(), features=channels)
    task = asyncio.create_task(train_in_process(JobSpec("t", request, data, tmp_path / "out")))
    while not multiprocessing.active_children():  # noqa: ASYNC110 - until the worker runs
        await asyncio.sleep(0.01)
    assert task.cancel()  # still training
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not multiprocessing.active_children()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
