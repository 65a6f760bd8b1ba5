"""Running ``anomaly-api serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from redis_server import free_port


def cli_path() -> str:
    """The ``anomaly-api`` script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("anomaly-api")
    found = str(script) if script.exists() else shutil.which("anomaly-api")
    if found is None:  # the package is not installed: fail, do not skip
        raise RuntimeError("the anomaly-api command is not installed")
    return found


class ServiceProcess:
    """A running ``anomaly-api serve`` and the URL it answers on."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace")


@contextmanager
def run_service(
    artifacts_dir: Path, workdir: Path, *args: str, ready_timeout_s: float = 90.0
) -> Iterator[ServiceProcess]:
    """Start ``anomaly-api serve`` over ``artifacts_dir`` and wait until it answers.

    Only loopback, the in-process cache and this test's directories: the environment's
    Redis and ``.env`` settings are left out.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
    env.pop("REDIS_URL", None)
    env.update(
        ANOMALY_ARTIFACTS_DIR=str(artifacts_dir),
        ANOMALY_HOST="127.0.0.1",
    )
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [cli_path(), "serve", "--port", str(port), *args],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}:\n{service.output()}")
            try:
                httpx.get(f"{service.url}/health/live", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"serve did not answer:\n{service.output()}") from None
                time.sleep(0.1)
        yield service
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
