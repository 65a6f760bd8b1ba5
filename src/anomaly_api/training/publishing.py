"""Train out of sight, publish at once: a version is written into a staging directory
beside its model's versions, then renamed into place (one atomic rename on the same
filesystem) and registered. A training stopped at any point leaves no version behind,
only a staging directory that nothing reads (its name starts with a dot)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from anomaly_api.registry import model_dir, register_version

__all__ = ["STAGING_DIR", "discard", "publish", "staging_dir"]

STAGING_DIR = ".staging"


def staging_dir(artifacts_dir: Path, name: str, key: str) -> Path:
    """Where one training of model ``name`` (``key``: a job id) writes its version."""
    return model_dir(artifacts_dir, name) / STAGING_DIR / key


def publish(
    artifacts_dir: Path, name: str, staging: Path, version: str, *, auto_promote: bool = False
) -> dict[str, Any]:
    """Move the staged ``version`` into model ``name`` and register it (``candidate``,
    and ``production`` when it has none or, with ``auto_promote``, when it is not worse);
    returns the promotion decision. ``OSError`` when the version exists already."""
    os.rename(staging / version, model_dir(artifacts_dir, name) / version)
    return register_version(artifacts_dir, name, version, auto_promote=auto_promote)


def discard(staging: Path) -> None:
    """Remove a staging directory and whatever a training left in it."""
    shutil.rmtree(staging, ignore_errors=True)
