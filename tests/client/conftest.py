"""Fixtures of the client tests: real ``anomaly-api serve`` processes over the tiny model."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.e2e_service import cli_path, run_service
from redis_server import free_port

API_KEY = "client-test-key-0123456789"


@pytest.fixture(scope="module")
def server_url(tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An open server (no API keys) over a copy of the tiny model."""
    workdir = tmp_path_factory.mktemp("client-served")
    shutil.copytree(tiny_artifacts_dir, workdir / "artifacts")
    with run_service(workdir / "artifacts", workdir) as service:
        yield service.url


def start_server(
    artifacts_dir: Path, workdir: Path, port: int, **env_extra: str
) -> subprocess.Popen[bytes]:
    """``anomaly-api serve`` on ``port`` with extra ``ANOMALY_*`` settings; not waited for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
    env.pop("REDIS_URL", None)
    env.update(ANOMALY_ARTIFACTS_DIR=str(artifacts_dir), ANOMALY_HOST="127.0.0.1", **env_extra)
    with (workdir / f"serve-{port}.log").open("wb") as log:
        return subprocess.Popen(
            [cli_path(), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by ``start_server``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def keyed_server_url(
    tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server that requires ``API_KEY``."""
    workdir = tmp_path_factory.mktemp("client-keyed")
    shutil.copytree(tiny_artifacts_dir, workdir / "artifacts")
    port = free_port()
    process = start_server(workdir / "artifacts", workdir, port, ANOMALY_API_KEYS=API_KEY)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(900):
            if process.poll() is not None:
                raise RuntimeError((workdir / f"serve-{port}.log").read_text())
            try:
                httpx.get(f"{url}/health/live", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        stop(process)


@pytest.fixture
def artifacts_copy(tiny_artifacts_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model's artifact directory."""
    shutil.copytree(tiny_artifacts_dir, tmp_path / "artifacts")
    return tmp_path / "artifacts"
