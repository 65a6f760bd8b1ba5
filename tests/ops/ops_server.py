"""A real ``anomaly-api serve`` process on a free loopback port, for the operations tests.

Its stderr (JSON log lines) goes to a file the test can read. ``stop()`` sends SIGTERM
and returns the exit code; the fixture kills whatever is left, so no test leaks a server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from redis_server import free_port

__all__ = ["ServerProcess", "running_server"]


class ServerProcess:
    """One server process and the files it writes."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        command = [sys.executable, "-m", "anomaly_api.cli.main", "serve", "--no-train-if-missing"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
        full_env.update(env)
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(
                command, env=full_env, stdout=sink, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until ``/health/ready`` answers 200 (or fail with the server's log)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The server's JSON log lines, parsed (other lines are skipped)."""
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server."""
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then the exit code (killed and -9 when it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout_s)

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        """The exit code once the process ends by itself (killed and -9 after the timeout).

        A second SIGTERM while one is being handled would be a fast shutdown, not a graceful
        one, so tests that signalled already wait here instead of calling ``stop()``.
        """
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return -9


@contextmanager
def running_server(workdir: Path, **env: str) -> Iterator[ServerProcess]:
    """A ready server with ``ANOMALY_*`` settings from ``env``; killed on exit if still up."""
    server = ServerProcess(workdir, env)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)
