"""A throwaway ``redis-server`` on a free loopback port, for cache and fault tests.

The shared Redis on 127.0.0.1:6379 is never stopped; tests that kill, freeze or restart
Redis use one of these. Imported by conftest files (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process that can be killed, frozen and restarted on its port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # CI installs it (.ci/run); fail loudly rather than skip
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client for assertions (server stats, TTLs)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        options = f"--port {self.port} --bind 127.0.0.1 --appendonly no".split()
        self.process = subprocess.Popen(
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
        """Kill the server abruptly (SIGKILL) and reap it."""
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
    """A started ``RedisServer``, killed on exit whatever the test did to it."""
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()  # SIGKILL also ends a frozen (SIGSTOPped) process
