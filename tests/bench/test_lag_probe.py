"""The bench's event-loop lag / GC probe: what a window reports, and its route."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import httpx
import pytest
from bench.lag_probe import PATH, LagProbe, create_probed_app

from anomaly_api.config import Settings
from api_testing import lifespan


async def test_a_window_reports_loop_wakeups_and_gc_pauses_then_starts_anew() -> None:
    probe = LagProbe(interval_s=0.001)
    probe.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.02)  # noqa: ASYNC251 (holds the loop on purpose: a late wake-up)
        await asyncio.sleep(0.01)
        gc.collect()
        window = probe.window()
    finally:
        probe.stop()
    lag = window["loop_lag"]
    assert lag["count"] >= 2
    assert 0 <= lag["p50_ms"] <= lag["p90_ms"] <= lag["p99_ms"] <= lag["max_ms"]
    assert window["gc"]["gen2"]["count"] >= 1
    assert window["gc"]["gen2"]["total_ms"] >= window["gc"]["gen2"]["max_ms"] > 0
    assert probe.window()["gc"]["gen2"] == {"count": 0, "total_ms": 0}
    assert probe._on_gc not in gc.callbacks


async def test_the_probed_app_serves_the_window_route(
    monkeypatch: pytest.MonkeyPatch, tiny_artifacts_dir: Path
) -> None:
    monkeypatch.setenv("ANOMALY_ARTIFACTS_DIR", str(tiny_artifacts_dir))
    monkeypatch.setattr("anomaly_api.api.app.get_settings", Settings)
    app = create_probed_app()
    async with (
        lifespan(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
    ):
        first = (await c.get(PATH)).json()
        await asyncio.sleep(0.05)
        second = (await c.get(PATH)).json()
    assert first["started"] is True
    assert second["started"] is False
    assert second["loop_lag"]["count"] >= 1
    assert set(second["gc"]) == {"gen0", "gen1", "gen2"}
