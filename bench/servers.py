"""Start and stop real servers on loopback: uvicorn (one worker) and a throwaway Redis."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _ready(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


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


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANOMALY_", "NUMBA_"))}
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


@contextmanager
def uvicorn_server(
    name: str, app: str, env: Mapping[str, str], *, factory: bool, ready_path: str
) -> Iterator[Server]:
    """Run ``app`` under uvicorn with one worker on a free port until the block ends."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    args += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    if factory:
        args.append("--factory")
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=_clean_env(env))
    try:
        while not _ready(port, ready_path):
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
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("throwaway redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://{HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
