"""Fixtures of the client tests: real ``anomaly-api serve`` processes over the tiny model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from anomaly_api import registry
from anomaly_api.testing import running_server
from e2e.e2e_service import run_service
from factories import fit_tiny_artifact

API_KEY = "client-test-key-0123456789"


@pytest.fixture(scope="module")
def server_url(tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An open server (no API keys) over a copy of the tiny model."""
    workdir = tmp_path_factory.mktemp("client-served")
    shutil.copytree(tiny_artifacts_dir, workdir / "artifacts")
    with run_service(workdir / "artifacts", workdir) as service:
        yield service.url


@pytest.fixture(scope="module")
def keyed_server_url(
    tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server that requires ``API_KEY``."""
    workdir = tmp_path_factory.mktemp("client-keyed")
    shutil.copytree(tiny_artifacts_dir, workdir / "artifacts")
    settings = {"ANOMALY_ARTIFACTS_DIR": str(workdir / "artifacts"), "ANOMALY_API_KEYS": API_KEY}
    with running_server(workdir, settings) as server:
        yield server.url


@pytest.fixture
def artifacts_copy(tiny_artifacts_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model's artifact directory."""
    shutil.copytree(tiny_artifacts_dir, tmp_path / "artifacts")
    return tmp_path / "artifacts"


@pytest.fixture(scope="module")
def fleet_url(tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over ``default`` (tiny-1) and the named model ``pumps`` (p1)."""
    workdir = tmp_path_factory.mktemp("client-fleet")
    root = workdir / "artifacts"
    shutil.copytree(tiny_artifacts_dir, root)
    fit_tiny_artifact(registry.model_dir(root, "pumps"), "p1", seed=1)
    registry.register_version(root, "pumps", "p1")
    with run_service(root, workdir) as service:
        yield service.url
