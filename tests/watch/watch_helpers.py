"""What the watcher's tests share: configs, a sink that records, reading /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.watch.config import WatchConfig, parse_watch_config
from anomaly_api.watch.scoring import ScoredReadings


def prometheus_config(
    url: str,
    tmp_path: Path,
    artifacts: Path,
    *,
    port: int = 0,
    infer_every: str = "1s",
    lookback: str = "1m",
    max_series: int = 100,
    sinks: dict[str, Any] | None = None,
    step: str = "1s",
    fit: dict[str, Any] | None = None,
    model: dict[str, str] | None = None,
) -> WatchConfig:
    return parse_watch_config(
        {
            "artifacts_dir": str(artifacts),
            "state_dir": str(tmp_path / "state"),
            "metrics": {"port": port, "max_series": max_series},
            "jobs": [
                {
                    "name": "pumps",
                    "source": {
                        "prometheus": {
                            "url": url,
                            "query": "sensor_value",
                            "channel_label": "sensor",
                            "group_by": ["pump"],
                            "step": step,
                            "lookback": lookback,
                            "timeout": "2s",
                        }
                    },
                    "schedule": {"infer_every": infer_every},
                    "sinks": sinks or {"metrics": True},
                    **({} if fit is None else {"fit": fit}),
                    **({} if model is None else {"model": model}),
                }
            ],
        }
    )


class Recorder:
    """A sink that keeps every scored batch (and can fail on a chosen stream, once)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[ScoredReadings] = []
        self.fail_on = fail_on

    async def write(self, scored: ScoredReadings, *, live: bool) -> None:
        if scored.readings.stream_id == self.fail_on:
            self.fail_on = None
            raise RuntimeError("the watcher dies here")
        self.batches.append(scored)

    async def close(self) -> None:
        return None

    def timestamps(self, stream: str) -> list[float]:
        return [
            t for b in self.batches if b.readings.stream_id == stream for t in b.readings.timestamps
        ]


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The watcher's /metrics as (name, labels) -> value."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    for (found, found_labels), number in samples.items():
        if found == name and set(labels.items()) <= found_labels:
            return number
    return None


async def until(check: Callable[[], Any], limit_s: float = 30.0, every: float = 0.05) -> float:
    """Poll the (async) ``check`` until it is truthy; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(every)
    raise TimeoutError("condition not reached")
