"""HTTP load with wrk (one thread, a fixed duration) and a sequential keep-alive client."""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.servers import HOST

# Each request gets its own feature vector (a counter nudges two features), so the
# service's cache never answers: these are cache misses. ``same`` repeats one body.
_LUA = """
local counter = 0
local unique = {unique}
request = function()
  counter = counter + 1
  local a, b = 0.5, 0.9
  if unique then a = 0.5 + counter * 1e-9; b = 0.9 - counter * 1e-9 end
  local body = string.format(
    '{{"features":[%.12f,1.2,-0.3,0.8,1.5,0.2,-0.1,%.12f],"observation_id":"bench"}}', a, b)
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, body)
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
BATCH_ROWS = 1000
N_FEATURES = 8
_BATCH_BASE = np.random.default_rng(1).normal(size=(BATCH_ROWS, N_FEATURES))


def batch_body(i: int) -> bytes:
    """The ``i``-th 1,000-row batch body; its rows differ from every other's (cache misses)."""
    rows = np.round(_BATCH_BASE + i * 1e-6, 6).tolist()
    return orjson.dumps({"observations": [{"features": row} for row in rows]})


@dataclass(frozen=True)
class LoadResult:
    """Throughput and latency percentiles of one wrk run."""

    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Non-2xx answers plus socket errors (connect, read, write, timeouts)."""
    non_2xx: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON report."""
        return asdict(self)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, connections: int, duration_s: float) -> LoadResult:
    """Read requests/s, p50, p99 and error counts from ``wrk --latency`` output."""
    percentiles = dict(re.findall(r"^\s+(50|99)\.000%\s+(\S+)", output, re.MULTILINE))
    if not percentiles:  # wrk without HdrHistogram prints "50%" rather than "50.000%"
        percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None or rate is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad_status = int(non_2xx[1]) if non_2xx else 0
    errors = bad_status + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0)
    return LoadResult(
        connections=connections,
        duration_s=duration_s,
        requests=int(requests[1]),
        requests_per_s=float(rate[1]),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        errors=errors,
        non_2xx=bad_status,
    )


def run_wrk(
    port: int, path: str, connections: int, duration_s: float, *, unique: bool, workdir: Path
) -> LoadResult:
    """POST to ``path`` with ``connections`` keep-alive connections for ``duration_s``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = (
        workdir / f"wrk-{'unique' if unique else 'same'}-{path.strip('/').replace('/', '_')}.lua"
    )
    script.write_text(_LUA.format(unique="true" if unique else "false", path=path))
    args = [binary, "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "--timeout", "5s"]
    args += ["-s", str(script), f"http://{HOST}:{port}{path}"]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration_s + 30)
    return parse_wrk(done.stdout, connections, duration_s)


def post_many(port: int, path: str, bodies: list[bytes]) -> dict[str, Any]:
    """POST each body in turn on one keep-alive connection; latency percentiles in ms."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    server_ms: list[float] = []
    try:
        for body in bodies:
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            latencies.append((time.perf_counter() - started) * 1e3)
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {payload[:200]!r}")
            server_ms.append(float(orjson.loads(payload).get("inference_ms", 0.0)))
    finally:
        conn.close()
    ordered = sorted(latencies)
    return {
        "requests": len(bodies),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "server_inference_ms_p50": statistics.median(server_ms),
    }
