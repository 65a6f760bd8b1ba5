"""The installed ``anomaly-api`` command serving on a free loopback port (end-to-end tests)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anomaly_api.testing import ServerProcess, running_server

__all__ = [
    "ServerProcess",
    "cli_path",
    "eventually",
    "read_response",
    "refuses_connections",
    "run_service",
]


def cli_path() -> str:
    """The ``anomaly-api`` script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("anomaly-api")
    found = str(script) if script.exists() else shutil.which("anomaly-api")
    if found is None:  # the package is not installed: fail, do not skip
        raise RuntimeError("the anomaly-api command is not installed")
    return found


@contextmanager
def run_service(
    artifacts_dir: Path, workdir: Path, *args: str, ready_timeout_s: float = 90.0
) -> Iterator[ServerProcess]:
    """``anomaly-api serve`` over ``artifacts_dir`` with the in-process cache, once it answers
    ``/health/live`` (with or without a model)."""
    with running_server(
        workdir,
        {"ANOMALY_ARTIFACTS_DIR": str(artifacts_dir)},
        args=args,
        program=[cli_path()],
        ready_path="/health/live",
        ready_timeout_s=ready_timeout_s,
    ) as service:
        yield service


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not before the deadline"
        time.sleep(0.1)


def refuses_connections(port: int) -> bool:
    """Whether nothing accepts connections on the loopback ``port`` any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the one response on ``sock`` (the server closes it after)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)
