"""An optional probe of the served process for the p99 tail: event-loop lag and GC pauses.

``python -m bench --lag-probe`` serves ``create_probed_app`` instead of the plain app factory:
the same service plus one bench-only route, ``GET /_bench/lag``. Its first call starts

* a task on the event loop that sleeps ``INTERVAL_S`` (10 ms) again and again and records how
  late it wakes (the loop's lag: how long something else held it), and
* a ``gc.callbacks`` hook that times every collection, per generation.

Each call answers what was recorded since the previous one (percentiles in ms) and starts a
new window, so the bench calls it before and after each wrk run and stores the second answer
next to that run's latencies. The probe never runs in the served product.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI

from anomaly_api.api.app import create_app

__all__ = ["INTERVAL_S", "LagProbe", "create_probed_app"]

INTERVAL_S = 0.010
PATH = "/_bench/lag"


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {
        "count": len(values),
        "p50_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(array.max()), 3),
    }


class LagProbe:
    """Records event-loop wake-up lateness and GC pause times until ``stop``."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.lag_ms: list[float] = []
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._gc_started: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            elapsed = (time.perf_counter() - self._gc_started) * 1e3
            self.gc_ms[int(info["generation"])].append(elapsed)
            self._gc_started = None

    async def _sleeper(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late = time.perf_counter() - before - self.interval_s
            self.lag_ms.append(max(late, 0.0) * 1e3)

    def start(self) -> None:
        """Start recording (on the running loop)."""
        if self._task is None:
            gc.callbacks.append(self._on_gc)
            self._task = asyncio.get_running_loop().create_task(self._sleeper())

    def stop(self) -> None:
        """Stop recording."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            gc.callbacks.remove(self._on_gc)

    def window(self) -> dict[str, Any]:
        """What was recorded since the last call, as percentiles; starts a new window."""
        lag, self.lag_ms = self.lag_ms, []
        pauses, self.gc_ms = self.gc_ms, {0: [], 1: [], 2: []}
        gc_summary = {
            f"gen{gen}": {**_percentiles(values), "total_ms": round(sum(values), 3)}
            for gen, values in pauses.items()
        }
        return {
            "interval_ms": self.interval_s * 1e3,
            "loop_lag": _percentiles(lag),
            "gc": gc_summary,
        }


def create_probed_app() -> FastAPI:
    """The service's app with ``GET /_bench/lag`` (bench only; see the module docstring)."""
    app = create_app()
    probe = LagProbe()

    async def lag_window() -> dict[str, Any]:
        started = probe._task is not None
        probe.start()
        return {"started": not started, **probe.window()}

    app.add_api_route(PATH, lag_window, methods=["GET"], include_in_schema=False)
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with service_lifespan(app) as state:
            try:
                yield state
            finally:
                probe.stop()

    app.router.lifespan_context = lifespan
    return app
