"""An optional probe of the served process for the p99 tail: event-loop lag and GC pauses.

``python -m bench predict --lag-probe`` serves ``create_probed_app``: the service plus one
bench-only route, ``GET /_bench/lag``, whose first call starts a task on the event loop that
sleeps ``INTERVAL_S`` (10 ms) again and again and records how late it wakes (the loop's lag:
how long something else held it), and a ``gc.callbacks`` hook that times every collection per
generation. Each call answers what was recorded since the previous one (percentiles in ms) and
starts a new window; ``observe`` takes one per wrk run, with the service's own latency
histogram over it. The probe never runs in the served product.
"""

from __future__ import annotations

import asyncio
import gc
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import FastAPI

from anomaly_api.api.app import create_app
from bench.load import connect, send

if TYPE_CHECKING:
    from bench.servers import Server

INTERVAL_S = 0.010
PATH = "/_bench/lag"


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    p50, p90, p99, top = (round(float(v), 3) for v in np.percentile(values, [50, 90, 99, 100]))
    return {"count": len(values), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": top}


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


def _get(port: int, path: str) -> bytes:
    with connect(port, 10.0) as conn:
        return send(conn, path)


_BUCKET = re.compile(
    r'^anomaly_http_request_duration_seconds_bucket\{le="([^"]+)",method="POST",'
    r'route="/predict",status="200"\} ([0-9.e+]+)$',
    re.MULTILINE,
)


def app_latency(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Requests between two scrapes of the service's ``/predict`` histogram and the bucket
    holding their p50 and p99 (upper bound, ms): the time inside the app, without the socket
    queue and uvicorn's parser that wrk's latency also counts."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts.get(math.inf, 0.0)
    out: dict[str, Any] = {"requests": total}
    for name, q in (("p50_le_ms", 0.5), ("p99_le_ms", 0.99)):
        bound = next((le for le, c in counts.items() if total and c >= q * total), math.inf)
        out[name] = bound * 1e3 if bound != math.inf else "inf"
    return out


@contextmanager
def observe(server: Server) -> Iterator[dict[str, Any]]:
    """What the probed service went through while the block ran: the probe's window and
    the in-app latency."""

    def buckets() -> dict[float, float]:
        text = _get(server.port, "/metrics").decode()
        return {float(le): float(count) for le, count in _BUCKET.findall(text)}

    _get(server.port, PATH)  # starts the probe, or drops what came before
    scraped, seen = buckets(), dict[str, Any]()
    yield seen
    seen["lag_probe"] = orjson.loads(_get(server.port, PATH))
    seen["in_app_latency"] = app_latency(scraped, buckets())
