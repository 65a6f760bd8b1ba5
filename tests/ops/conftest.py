"""Fixtures of the operations tests: artifact directories with several versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FitVersion = Callable[..., Path]


@pytest.fixture(scope="session")
def fit_version(pytestconfig: pytest.Config) -> FitVersion:
    """``fit_tiny_artifact`` of the root conftest.

    Taken from the registered conftest plugin: ``from conftest import ...`` would pick up
    whichever ``conftest`` module pytest imported last (``tests/api/conftest.py``, say).
    """
    root_conftest = pytestconfig.pluginmanager.get_plugin(
        str(Path(__file__).resolve().parents[1] / "conftest.py")
    )
    assert root_conftest is not None, "tests/conftest.py is not loaded"
    fit: FitVersion = root_conftest.fit_tiny_artifact
    return fit


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, fit_version: FitVersion) -> Path:
    """tiny-1 (LATEST) and tiny-2 (seed 1); tests must not move LATEST."""
    root = tmp_path_factory.mktemp("two-versions")
    fit_version(root, "tiny-2", seed=1)
    fit_version(root, "tiny-1", seed=0)
    return root
