"""The installed ``anomaly-api`` command serving on a free loopback port (end-to-end tests)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anomaly_api.testing import ServerProcess, running_server

__all__ = ["ServerProcess", "cli_path", "run_service"]


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
