"""Fixtures shared by every test package: tiny models fitted into tmp paths."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anomaly_api.data.timeseries import TimeSeriesDataset, synthetic_timeseries
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED, fit_time_aware_artifact, fit_tiny_artifact
from headless_browser import HeadlessBrowser

TESTS = Path(__file__).resolve().parent
_PROCESS_DIRS = {"e2e", "bench"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``process`` every test that starts real processes: everything under ``e2e/``
    and ``bench/``, and every test using a throwaway ``redis_server``. CI runs them all;
    ``-m 'not process'`` leaves them out for a quick in-process run."""
    for item in items:
        in_dir = item.path.is_relative_to(TESTS) and (
            item.path.relative_to(TESTS).parts[0] in _PROCESS_DIRS
        )
        if in_dir or "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.process)


@pytest.fixture(scope="session")
def tiny_artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact directory holding one tiny 8-feature model, `tiny-1` (read-only use)."""
    root = tmp_path_factory.mktemp("artifacts")
    fit_tiny_artifact(root)
    return root


@pytest.fixture(scope="session")
def default_artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact directory holding the real default model, trained once (read-only use)."""
    from anomaly_api.training.pipeline import train_default_model

    root = tmp_path_factory.mktemp("default-artifacts")
    train_default_model(root)
    return root


@pytest.fixture(scope="session")
def ta_artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default time-aware model (`ta-1`, labelled synthetic stream), trained once for
    the session (read-only use: copy it to change it)."""
    root = tmp_path_factory.mktemp("ta-artifacts")
    fit_time_aware_artifact(root)
    return root


@pytest.fixture(scope="session")
def ta_follow_artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default time-aware model with the ``follow`` feature (memory 100, so that the
    followed state moves within a test's readings), ``ta-1`` too (read-only use)."""
    root = tmp_path_factory.mktemp("ta-follow-artifacts")
    fit_time_aware_artifact(root, follow_memory=100)
    return root


@pytest.fixture
def ta_artifacts(tmp_path: Path, ta_artifacts_dir: Path) -> Path:
    """A private, writable copy of the time-aware model's artifact directory (`ta-1`)."""
    target = tmp_path / "ta-artifacts"
    shutil.copytree(ta_artifacts_dir, target)
    return target


@pytest.fixture(scope="session")
def ta_series() -> TimeSeriesDataset:
    """The labelled synthetic stream the time-aware model of `ta_artifacts_dir` was fitted on."""
    return synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``python3`` Jupyter kernel running this interpreter, on any machine (notebook tests).

    Installed into ``tmp_path`` when the machine has none, so CI needs no Jupyter setup.
    """
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        prefix = tmp_path / "jupyter"
        install(prefix=str(prefix), kernel_name="python3")
        monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    assert KernelSpecManager().get_kernel_spec("python3").language == "python"
    return "python3"


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


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessBrowser]:
    """Headless chromium with a fresh profile directory."""
    work = tmp_path_factory.mktemp("chromium")
    chromium = HeadlessBrowser(work / "profile", work / "chromium.log")
    try:
        yield chromium
    finally:
        chromium.close()
