"""What the commands share: the artifact-directory default and clean user-facing errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

USAGE_ERROR = 2
"""Exit code of every error the user can fix (bad data, unknown version), as Click uses."""


def fail(message: str) -> NoReturn:
    """Print one ``error:`` line to stderr and exit with ``USAGE_ERROR``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


def progress(message: str) -> None:
    """Print a progress line to stderr, so stdout stays for results."""
    typer.echo(f"- {message}", err=True)


def resolve_artifacts_dir(artifacts_dir: Path | None) -> Path:
    """The given directory, or the configured one (``ANOMALY_ARTIFACTS_DIR``)."""
    if artifacts_dir is not None:
        return artifacts_dir
    from anomaly_api.config import get_settings

    return get_settings().artifacts_dir


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn data and artifact errors into one clean line and exit code 2."""
    from anomaly_api.data.errors import DataError

    try:
        yield
    except DataError as exc:
        fail(str(exc))
    except Exception as exc:
        # an ArtifactError exists only once its module is loaded: looked up, not imported,
        # so that a command that has not touched an artifact yet does not import the model
        # code here (train-fleet on Dask never does)
        artifacts = sys.modules.get("anomaly_api.artifacts")
        if artifacts is not None and isinstance(exc, artifacts.ArtifactError):
            fail(str(exc))
        raise
