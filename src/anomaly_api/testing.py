"""Real processes on loopback for tests, the benchmark and the scripts, written once.

* ``free_port()``: a loopback port nothing listens on (never a fixed port);
* ``RedisServer`` / ``throwaway_redis``: a private ``redis-server`` that can be killed,
  frozen and restarted on its port (the shared Redis on 6379 is never touched);
* ``ServerProcess`` / ``running_server``: ``anomaly-api serve`` on a free port, its output
  in a file, stopped or killed on exit.

Only the standard library and redis-py (a runtime dependency) are used, so the module
imports wherever the package is installed: ``tests/``, ``bench/`` (``python -m bench``)
and ``scripts/`` alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

__all__ = [
    "HOST",
    "SHARED_REDIS_URL",
    "RedisServer",
    "ServerProcess",
    "clean_env",
    "free_port",
    "running_server",
    "throwaway_redis",
    "wait_for_port",
]

HOST = "127.0.0.1"
SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
"""The long-running Redis tests may share (with their own key prefixes); never stopped."""


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Block until something accepts connections on ``port`` (fail if ``process`` dies)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            time.sleep(0.02)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``ANOMALY_*`` setting or ``REDIS_URL``, plus
    ``extra``: a child sees only the settings it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
    env.pop("REDIS_URL", None)
    env.update(extra or {})
    return env


class RedisServer:
    """One ``redis-server`` process that can be killed, frozen and restarted on its port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # CI installs it (.ci/run); fail loudly rather than skip
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of this server."""
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client for assertions (server stats, TTLs)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        options = f"--port {self.port} --bind {HOST} --appendonly no".split()
        self.process = subprocess.Popen(  # noqa: S603 (our own fixed command)
            [self.binary, *options, "--save", "", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        with self.client() as probe:
            while True:
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL, which also ends a frozen one) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): connections hang, as with an overloaded Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen server (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def throwaway_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started ``RedisServer``, killed on exit whatever was done to it."""
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 (loopback)
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class ServerProcess:
    """``anomaly-api serve`` on a free loopback port; its output goes to ``log_path``.

    ``env`` holds the ``ANOMALY_*`` settings (nothing else of the kind is inherited; one
    worker unless ``ANOMALY_WORKERS`` says otherwise); ``program`` is how to run the CLI
    (the default: this interpreter's module).
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = ("--no-train-if-missing",),
        program: Sequence[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        command = list(program or [sys.executable, "-m", "anomaly_api.cli.main"])
        command += ["serve", "--host", HOST, "--port", str(self.port), *args]
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(  # noqa: S603 (our own fixed command)
                command,
                cwd=workdir,
                env=clean_env({"ANOMALY_WORKERS": "1", **(env or {})}),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: workers are killed with it
            )

    def wait_ready(self, timeout_s: float = 90.0, path: str = "/health/ready") -> None:
        """Block until ``path`` answers 200 (or fail with the server's output)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.output()}")
            if _http_status(self.url + path) == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The server's JSON log lines, parsed (other lines are skipped)."""
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

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
        one, so callers that signalled already wait here instead of calling ``stop()``.
        """
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        """End the server and its worker processes if any still run (SIGKILL to the
        process group), and reap it."""
        with contextlib.suppress(ProcessLookupError):  # gone: the server and its workers
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@contextmanager
def running_server(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = ("--no-train-if-missing",),
    program: Sequence[str] | None = None,
    ready_path: str = "/health/ready",
    ready_timeout_s: float = 90.0,
) -> Iterator[ServerProcess]:
    """A server answering 200 on ``ready_path``; killed on exit if still up."""
    server = ServerProcess(workdir, env, args=args, program=program)
    try:
        server.wait_ready(ready_timeout_s, ready_path)
        yield server
    finally:
        server.kill()
