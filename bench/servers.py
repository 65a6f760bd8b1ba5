"""The suite's servers on loopback: uvicorn (one worker unless told) and a throwaway Redis.

The port, environment and Redis helpers are ``anomaly_api.testing``'s, shared with the tests.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly_api.testing import HOST, clean_env, free_port, throwaway_redis, wait_for_port
from bench.data import ROOT

SERVICE_APP = "anomaly_api.api.app:create_app"
BARE_APP = "bench.bare_app:app"
"""The ceiling: a bare FastAPI endpoint taking ``/predict``'s body."""
WORKER_APP = "anomaly_api.cli.workers:worker_app"
"""What each worker of ``anomaly-api serve --workers N`` runs."""
READY_TIMEOUT_S = 180.0  # generous: a loaded CI machine starts servers slowly


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc: what a request costs the
    server, much less disturbed than its throughput by other load on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def listening(port: int) -> int:
    """Sockets listening on ``port`` (Linux): one per ready worker of ``serve --workers``."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows)


@dataclass
class Server:
    """A running uvicorn server and what its start cost."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    start_to_ready_s: float
    rss_ready_mb: float

    def rss_mb(self) -> float:
        """Current resident set size."""
        return rss_mb(self.process.pid)


@contextmanager
def uvicorn_server(
    name: str, app: str, env: Mapping[str, str], *, factory: bool, ready_path: str,
    loop: str = "asyncio", workers: int = 1,
) -> Iterator[Server]:  # fmt: skip
    """Run ``app`` under uvicorn with ``workers`` workers on a free port until the block ends."""
    port = free_port()
    if workers > 1:  # as ``serve --workers`` runs them: uvicorn's own --workers leaves Nagle on
        options = {"host": HOST, "port": port, "loop": loop, "log_level": "warning",
                   "access_log": False}  # fmt: skip
        run = f"run_workers({workers}, {options!r}, app={app!r}, factory={factory})"
        args = [sys.executable, "-c", f"from anomaly_api.cli.workers import run_workers; {run}"]
    else:
        args = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
        args += ["--loop", loop, "--log-level", "warning", "--no-access-log"]
        args += ["--factory"] if factory else []
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=clean_env(env))
    try:
        # every worker listening: a kept-alive connection opened earlier stays on the first
        while not _ready(port, ready_path) or listening(port) < workers:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before ready")
            if time.perf_counter() - started > READY_TIMEOUT_S:
                raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        yield Server(name, port, process, elapsed, rss_mb(process.pid))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence); yields its URL."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir,
        throwaway_redis(Path(workdir)) as redis,
    ):
        yield redis.url


@contextmanager
def mosquitto_server() -> Iterator[int]:
    """A throwaway Mosquitto (1,000 QoS 1 messages in flight per client); its port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as workdir:
        config = Path(workdir) / "mosquitto.conf"
        config.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
                          "max_inflight_messages 1000\nmax_queued_messages 1000000\n")  # fmt: skip
        process = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 10.0, process)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def prometheus_server(target_port: int) -> Iterator[str]:
    """A throwaway Prometheus scraping ``127.0.0.1:target_port`` every second; its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: x\n"
                          "    honor_labels: true\n"
                          f"    static_configs: [{{targets: ['{HOST}:{target_port}']}}]\n"
                          )  # fmt: skip
        process = subprocess.Popen(["prometheus", f"--config.file={config}",
                                    f"--storage.tsdb.path={workdir}/tsdb", "--log.level=warn",
                                    f"--web.listen-address={HOST}:{port}"],
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_for_port(port, 30.0, process)
            yield f"http://{HOST}:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def service_env(
    artifacts_dir: Path, backend: str, redis_url: str | None = None, cache: str = "memory"
) -> dict[str, str]:
    """Environment of the service under test (``cache``: its ``ANOMALY_PREDICTION_CACHE``)."""
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts_dir),
        "ANOMALY_INFERENCE_BACKEND": backend,
        "ANOMALY_LOG_LEVEL": "WARNING",
        "ANOMALY_PREDICTION_CACHE": cache,
    }
    if redis_url is not None:
        env["ANOMALY_REDIS_URL"] = redis_url
    return env


def service_server(
    name: str, env: Mapping[str, str], *, app: str = SERVICE_APP, **kw: Any
) -> AbstractContextManager[Server]:
    """The service, built by its app factory (``app``), under uvicorn (``kw``: loop, workers)."""
    return uvicorn_server(name, app, env, factory=True, ready_path="/health/ready", **kw)


def bare_server(**kw: Any) -> AbstractContextManager[Server]:
    """The bare endpoint (``bench/bare_app.py``) under uvicorn (``kw``: loop, workers)."""
    return uvicorn_server("bare", BARE_APP, {}, factory=False, ready_path="/health/ready", **kw)
