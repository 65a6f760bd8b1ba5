"""HTTP load: wrk for a fixed duration (``/predict`` or stream readings) and a sequential
keep-alive client posting a fixed list of bodies."""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import statistics
import subprocess
import time
from contextlib import closing
from pathlib import Path
from string import Template
from typing import Any

import orjson

from anomaly_api.testing import HOST

PREDICT_LUA = Template((Path(__file__).parent / "wrk_predict.lua").read_text())
STREAM_LUA = Template((Path(__file__).parent / "wrk_stream.lua").read_text())
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_RUNS = itertools.count(1)
"""Each wrk run's own counter base (``wrk_predict.lua``): unique bodies across runs."""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, connections: int, duration_s: float) -> dict[str, Any]:
    """Requests, requests/s, p50, p99, max and errors (non-2xx plus socket errors) from wrk."""
    percentiles = dict(re.findall(r"^\s+(50|99)\.000%\s+(\S+)", output, re.MULTILINE))
    if not percentiles:  # wrk without HdrHistogram prints "50%" rather than "50.000%"
        percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.MULTILINE)
    if requests is None or rate is None or latency is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad_status = int(non_2xx[1]) if non_2xx else 0
    errors = bad_status + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0)
    return {
        "connections": connections, "duration_s": duration_s, "requests": int(requests[1]),
        "requests_per_s": float(rate[1]), "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]), "max_ms": _ms(latency[1]), "errors": errors,
        "non_2xx": bad_status,
    }  # fmt: skip


def run_wrk(
    port: int, path: str, connections: int, duration_s: float, *, workdir: Path,
    unique: bool = True, script: str | None = None, threads: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """wrk on ``threads`` threads: POSTs to ``path`` or what ``script`` sends; as a dict."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    flag = "true" if unique else "false"
    lua = script or PREDICT_LUA.substitute(unique=flag, path=path, base=next(_RUNS) * 10**8)
    file = workdir / f"wrk-{abs(hash(lua))}.lua"
    file.write_text(lua)
    args = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
    args += ["--timeout", "5s", "-s", str(file), f"http://{HOST}:{port}{path}"]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration_s + 60)
    result = parse_wrk(done.stdout, connections, duration_s)
    degraded = re.search(r"^degraded answers: (\d+)$", done.stdout, re.MULTILINE)
    if degraded is not None:
        result["degraded_answers"] = int(degraded[1])
    return result


def connect(port: int, timeout_s: float = 30.0) -> closing[http.client.HTTPConnection]:
    """A keep-alive connection to the server on ``port``, closed when the block ends."""
    return closing(http.client.HTTPConnection(HOST, port, timeout=timeout_s))


def send(conn: http.client.HTTPConnection, path: str, body: bytes | None = None) -> bytes:
    """POST ``body`` as JSON (GET without one); the answer's body, which must be a 200."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request("GET" if body is None else "POST", path, body, headers)
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}: {payload[:200]!r}")
    return payload


def post_many(port: int, path: str, bodies: list[bytes]) -> dict[str, Any]:
    """POST each body in turn on one keep-alive connection; latency percentiles in ms."""
    latencies: list[float] = []
    server_ms: list[float] = []
    with connect(port) as conn:
        for body in bodies:
            started = time.perf_counter()
            payload = send(conn, path, body)
            latencies.append((time.perf_counter() - started) * 1e3)
            server_ms.append(float(orjson.loads(payload).get("inference_ms", 0.0)))
    ordered = sorted(latencies)
    return {
        "requests": len(bodies),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "server_inference_ms_p50": statistics.median(server_ms),
    }
