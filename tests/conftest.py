"""Fixtures shared by every test package: tiny models fitted into tmp paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import fit_tiny_artifact


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
