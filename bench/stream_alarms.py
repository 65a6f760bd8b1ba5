"""``python -m bench.stream_alarms [--smoke] [--out FILE]``: the alarm step's cost per append.

In-process, no HTTP, no model: one caller appends one reading per call (8 channels,
60-reading window, 100 streams round-robin, 5% of readings anomalous) to each store,
``append`` alone against ``append`` + ``StreamAlarms.evaluate`` (the policy over the
reading's flag, then the compare-and-set of the stream's alarm state). Blocks of both
alternate, so a change in the machine's load hits both; the medians of the blocks are
reported. Redis is a throwaway ``redis-server`` started here. Under a minute; ``--smoke``:
seconds, numbers meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.config import Settings
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.service.stream_alarms import StreamAlarms
from anomaly_api.service.streams import InMemoryStreamStore, RedisStreamStore, StreamStore
from bench.servers import ROOT, redis_server
from bench.streams import CHANNELS, MODEL_KEY, WINDOW, _row

OUT = ROOT / "bench" / "results" / "stream_alarms.json"
POLICY = AlarmPolicy(k=3, window=10, cooldown=30)
STREAMS = 100


async def _block(
    store: StreamStore, alarms: StreamAlarms | None, start: int, n: int, tag: str
) -> float:
    """Microseconds per append over ``n`` appends (with the alarm step when ``alarms``)."""
    flags = [np.array([step % 20 == 0]) for step in range(start, start + n)]
    rows = [_row(step) for step in range(start, start + n)]
    began = time.perf_counter()
    for i in range(n):
        step = start + i
        window = await store.append(
            f"{tag}-{step % STREAMS}", [float(step)], rows[i], window=WINDOW, model_key=MODEL_KEY
        )
        if alarms is not None:
            await alarms.evaluate(window, 1, flags[i], POLICY)
    return (time.perf_counter() - began) / n * 1e6


async def compare(store: StreamStore, *, blocks: int, per_block: int) -> dict[str, Any]:
    alarms = StreamAlarms(store)
    plain: list[float] = []
    with_alarms: list[float] = []
    step = 0
    for _ in range(blocks):
        plain.append(await _block(store, None, step, per_block, "plain"))
        with_alarms.append(await _block(store, alarms, step, per_block, "alarm"))
        step += per_block
    base, total = statistics.median(plain), statistics.median(with_alarms)
    return {
        "append_us": round(base, 1),
        "append_with_alarms_us": round(total, 1),
        "alarm_us": round(total - base, 1),
        "ratio": round(total / base, 3),
        "blocks_append_us": [round(v, 1) for v in plain],
        "blocks_with_alarms_us": [round(v, 1) for v in with_alarms],
        "not_stored": alarms.not_stored,
    }


async def run(url: str, *, smoke: bool) -> dict[str, Any]:
    blocks, per_block = (2, 200) if smoke else (8, 2000)
    memory = InMemoryStreamStore(max_streams=10_000, idle_ttl_s=3600.0)
    results = {"memory": await compare(memory, blocks=blocks, per_block=per_block)}
    settings = Settings(redis_url=url, redis_timeout_s=2.0, stream_max_streams=10_000)
    redis_store = RedisStreamStore.from_settings(settings)
    try:
        results["redis"] = await compare(redis_store, blocks=blocks, per_block=per_block // 4)
    finally:
        await redis_store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    meta: dict[str, Any] = {
        "mode": "smoke" if options.smoke else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "channels": CHANNELS,
        "window": WINDOW,
        "policy": POLICY.to_dict(),
    }
    with redis_server() as url:
        results = asyncio.run(run(url, smoke=options.smoke))
    meta["load_average_after"] = list(os.getloadavg())
    options.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, **results}
    options.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"per-stream alarms on appends (load {meta['load_average_before']})")
    for backend, numbers in results.items():
        print(
            f"  {backend:7s} append {numbers['append_us']:8.1f} us, with alarms "
            f"{numbers['append_with_alarms_us']:8.1f} us (x{numbers['ratio']})"
        )
    print(f"written to {options.out}")


if __name__ == "__main__":
    main()
