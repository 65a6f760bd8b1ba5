"""CPU time of one stateful stream append (``POST /streams/{id}/readings``), in process.

``python -m bench.stream_cost [--store memory|redis|both] [--appends N] [--rounds R]
[--profile]``. The default time-aware model (window 60, 8 channels, trained with
``bench.models.prepare_time_aware`` on 4,000 synthetic readings) is served by
``create_app`` through ``httpx.ASGITransport`` (no sockets, no uvicorn): each append is
one reading of ``synthetic_timeseries(seed=1)`` to one of 16 streams, all past warm-up
(80 readings each first). With ``--store redis`` the streams live in the Redis at
``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) under a prefix of their own, deleted
afterwards. Also timed: ``TimeAwareModel.score_window`` alone on a 60-reading window (the
model's part of an append).

Figures are µs of process CPU time (``time.process_time``, every thread) per append, the
median over rounds of each round's mean; a loaded machine inflates them far less than the
wall clock. ``--profile`` prints cProfile's top functions for the chosen store instead.
To compare two trees, run this script with each tree's ``src`` on ``PYTHONPATH`` in turn,
round after round.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson

_clock = time.process_time
STREAMS = 16
WARM_UP = 80


def _readings(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    from anomaly_api.data.timeseries import synthetic_timeseries

    frame = synthetic_timeseries(seed=1, n_rows=n_rows)
    seconds = np.asarray(frame.timestamps, dtype=np.float64)  # seconds since the epoch
    return np.asarray(frame.data.X, dtype=np.float64), seconds


def _bodies(X: np.ndarray, seconds: np.ndarray) -> list[bytes]:
    from anomaly_api.service.stream_timestamps import iso

    return [
        orjson.dumps({"timestamps": [iso(float(t))], "readings": [row.tolist()]})
        for t, row in zip(seconds, X, strict=True)
    ]


async def _run(args: argparse.Namespace, store: str, artifacts: Path) -> dict[str, Any]:
    import httpx
    from asgi_lifespan import LifespanManager

    from anomaly_api.api.app import create_app
    from anomaly_api.config import Settings

    prefix = f"bench-stream-cost-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        artifacts_dir=artifacts,
        inference_backend="fast",
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if store == "redis"
        else None,
        stream_prefix=prefix,
        redis_timeout_s=2.0,  # a loaded machine must not turn a slow call into a fail-open
    )
    per_stream = WARM_UP + args.rounds * args.appends // STREAMS + 2
    X, seconds = _readings(per_stream)
    bodies = _bodies(X, seconds)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"content-type": "application/json"}
            position = 0

            async def append(stream: int, body: bytes) -> None:
                response = await client.post(
                    f"/streams/s{stream}/readings", content=body, headers=headers
                )
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text}")
                if store == "redis" and response.json()["stream"]["degraded"]:
                    raise RuntimeError("a Redis call failed: the answer came from memory")

            for position in range(WARM_UP):
                for stream in range(STREAMS):
                    await append(stream, bodies[position])
            position = WARM_UP

            async def one_round() -> float:
                nonlocal position
                started = _clock()
                for i in range(args.appends):
                    await append(i % STREAMS, bodies[position])
                    if i % STREAMS == STREAMS - 1:
                        position += 1
                return (_clock() - started) / args.appends * 1e6

            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await one_round()
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                result: dict[str, Any] = {}
            else:
                rounds = [await one_round() for _ in range(args.rounds)]
                result = {"append_us": round(statistics.median(rounds), 1), "rounds": rounds}
            for stream in range(STREAMS):
                await client.delete(f"/streams/s{stream}")
    return result


def _model_alone(artifacts: Path, repeats: int) -> float:
    from anomaly_api.artifacts import load_any_artifact

    model = load_any_artifact(artifacts).model
    X, seconds = _readings(200)
    times = []
    for i in range(repeats):
        end = 61 + i % 100
        started = _clock()
        model.score_window(seconds[end - 60 : end], X[end - 60 : end], last=1)
        times.append(_clock() - started)
    return round(statistics.median(times) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--store", choices=("memory", "redis", "both"), default="both")
    parser.add_argument("--appends", type=int, default=320, help="appends per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from bench.models import prepare_time_aware

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp)
        prepare_time_aware(artifacts, 4000)
        stores = ("memory", "redis") if args.store == "both" else (args.store,)
        report: dict[str, Any] = {}
        for store in stores:
            report[store] = asyncio.run(_run(args, store, artifacts))
        if not args.profile:
            report["score_window_us"] = _model_alone(artifacts, 2000)
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
