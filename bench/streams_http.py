"""``python -m bench.streams_http [--smoke]``: the stream endpoints over HTTP, with wrk.

- stateful ``POST /streams/{id}/readings`` (one reading per request, a time-aware model
  with a 60-reading window, 8 channels, every stream past warm-up) at 64 connections,
  with the in-process store and with Redis, against point-wise ``POST /predict`` (the
  bench's default-size ensemble, cache misses) at the same 64 connections;
- ``POST /predict/window`` with 1,000 readings, ``mode=last`` (the newest reading is
  answered) and ``mode=all`` (all 1,000 are): latency percentiles of one keep-alive client.

wrk runs one thread per connection here (``-t64 -c64``): each connection owns one stream,
so its readings arrive in order (the baseline runs the same way). The machine is shared:
the numbers are noisy, the load average is recorded beside them. Writes
``bench/results/streams_http.json``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.load import parse_wrk, post_many
from bench.models import prepare_artifact, prepare_time_aware
from bench.report import ratio
from bench.servers import HOST, ROOT, redis_server, service_env, service_server

OUT = ROOT / "bench" / "results" / "streams_http.json"
CONNECTIONS = 64

# One stream per wrk thread (one connection each); timestamps go up 300 s per request.
# Each thread counts the answers its store served fail-open from process memory
# ("degraded": a Redis call failed or timed out); done() prints the sum.
_STREAM_LUA = """
local threads = {{}}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("sid", counter)
  table.insert(threads, thread)
end
degraded = 0
function response(status, headers, body)
  if string.find(body, '"degraded":true', 1, true) then degraded = degraded + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("degraded") end
  io.write(string.format("degraded answers: %d\\n", total))
end
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{{"timestamps":[%d],"readings":[[%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f]]}}',
    {t0} + n * 300, math.sin(n / 7), math.cos(n / 5), math.sin(n / 3) * 0.5, 0.1,
    math.cos(n / 11), math.sin(n / 13), 0.2 + n * 1e-6, -0.1)
  return wrk.format("POST", "/streams/bench-" .. sid .. "/readings",
    {{["Content-Type"] = "application/json"}}, body)
end
"""
_PREDICT_LUA = """
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{{"features":[%.12f,1.2,-0.3,0.8,1.5,0.2,-0.1,%.12f]}}', 0.5 + n * 1e-9, 0.9 - n * 1e-9)
  return wrk.format("POST", "/predict", {{["Content-Type"] = "application/json"}}, body)
end
"""
T0 = 1_800_000_000
WARM = 60


def _wrk(port: int, script: str, duration: float, workdir: Path, name: str) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    path = workdir / f"{name}.lua"
    path.write_text(script)
    args = [binary, f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency"]
    args += ["--timeout", "5s", "-s", str(path), f"http://{HOST}:{port}/"]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration + 60)
    result = parse_wrk(done.stdout, CONNECTIONS, duration).as_dict()
    degraded = re.search(r"^degraded answers: (\d+)$", done.stdout, re.MULTILINE)
    if degraded is not None:  # the stream script's count of fail-open answers
        result["degraded_answers"] = int(degraded[1])
    return result


def warm_streams(port: int) -> None:
    """Post ``WARM`` readings to each wrk stream (16 a request), so wrk measures full windows
    (wrk's first timestamps come after these)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        for sid in range(1, CONNECTIONS + 1):
            for start in range(0, WARM, 15):
                n = min(15, WARM - start)
                body = {
                    "timestamps": [T0 - (WARM - start - i) * 300 for i in range(n)],
                    "readings": [[0.0, 1.0, 0.0, 0.1, 1.0, 0.0, 0.2, -0.1]] * n,
                }
                conn.request(
                    "POST", f"/streams/bench-{sid}/readings", orjson.dumps(body),
                    {"Content-Type": "application/json"},
                )  # fmt: skip
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    raise RuntimeError(f"warm-up answered {response.status}: {payload[:200]!r}")
    finally:
        conn.close()


def window_bodies(count: int, readings: int = 1000, mode: str = "last") -> list[bytes]:
    """``count`` different 1,000-reading windows (8 channels)."""
    import numpy as np

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(count):
        values = np.round(rng.normal(size=(readings, 8)), 6).tolist()
        times = [T0 + 300 * i for i in range(readings)]
        bodies.append(orjson.dumps({"timestamps": times, "readings": values, "mode": mode}))
    return bodies


def measure(
    pointwise: Path, timeaware: Path, duration: float, windows: int, workdir: Path
) -> dict[str, Any]:
    """Every measurement of this module, one server at a time: the point-wise ``/predict``
    baseline, stream readings with the in-process store, ``/predict/window`` (``windows``
    bodies per mode), stream readings with a throwaway Redis; then the two ratios."""
    results: dict[str, Any] = {"connections": CONNECTIONS, "duration_s": duration}
    with service_server("predict", service_env(pointwise, "fast")) as server:
        results["predict"] = _wrk(server.port, _PREDICT_LUA.format(), duration, workdir, "predict")
    stream_lua = _STREAM_LUA.format(t0=T0)
    with service_server("streams-memory", service_env(timeaware, "fast")) as server:
        warm_streams(server.port)
        results["streams_memory"] = _wrk(server.port, stream_lua, duration, workdir, "mem")
        results["window_1000"] = post_many(server.port, "/predict/window", window_bodies(windows))
        every = window_bodies(windows, mode="all")
        results["window_1000_all"] = post_many(server.port, "/predict/window", every)
    with (
        redis_server() as url,
        service_server("streams-redis", service_env(timeaware, "fast", url)) as server,
    ):
        warm_streams(server.port)
        results["streams_redis"] = _wrk(server.port, stream_lua, duration, workdir, "redis")
    base = results["predict"]["requests_per_s"]
    results["ratio_memory"] = ratio(results["streams_memory"]["requests_per_s"], base)
    results["ratio_redis"] = ratio(results["streams_redis"]["requests_per_s"], base)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds, numbers meaningless")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    duration = 2.0 if args.smoke else args.duration
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "note": "shared 2-core machine, other jobs running: noisy numbers",
    }
    with tempfile.TemporaryDirectory(prefix="bench-streams-http-") as tmp:
        work = Path(tmp)
        pointwise, timeaware = work / "pw", work / "ta"
        prepare_artifact(pointwise)
        prepare_time_aware(timeaware, 3000 if args.smoke else 10_000)
        results.update(measure(pointwise, timeaware, duration, 5 if args.smoke else 40, work))
    results["load_average_after"] = os.getloadavg()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    print(
        f"/predict {results['predict']['requests_per_s']:.0f} req/s; streams memory "
        f"{results['ratio_memory']:.2f}x (target 0.5x), redis {results['ratio_redis']:.2f}x "
        f"(target 0.35x); /predict/window 1,000 readings p50 "
        f"{results['window_1000']['p50_ms']:.1f} ms (mode all: "
        f"{results['window_1000_all']['p50_ms']:.1f} ms; target 30 ms)"
    )
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
