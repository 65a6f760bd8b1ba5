"""Fixtures of the end-to-end tests: a real server over a copy of the tiny model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_service import ServerProcess, run_service


@pytest.fixture(scope="session")
def served_tiny_model(
    tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server over a copy of the tiny model, shared by the end-to-end tests."""
    workdir = tmp_path_factory.mktemp("served")
    artifacts = workdir / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    with run_service(artifacts, workdir) as service:
        yield service
