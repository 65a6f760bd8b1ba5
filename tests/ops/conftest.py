"""Fixtures of the operations tests: artifact directories with several versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from factories import fit_tiny_artifact

FitVersion = Callable[..., Path]


@pytest.fixture(scope="session")
def fit_version() -> FitVersion:
    """The tiny-model fitter of ``tests/factories.py``."""
    return fit_tiny_artifact


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, fit_version: FitVersion) -> Path:
    """tiny-1 (LATEST) and tiny-2 (seed 1); tests must not move LATEST."""
    root = tmp_path_factory.mktemp("two-versions")
    fit_version(root, "tiny-2", seed=1)
    fit_version(root, "tiny-1", seed=0)
    return root
