"""Named models: ``<artifacts_dir>/models/<name>/`` each in today's layout, plus aliases.

The model named ``default`` is the artifact directory itself (the layout every existing
deployment has). An alias (``production``, ``candidate`` ...) is a small pointer file next
to ``LATEST``; a name without the alias resolves to ``LATEST``.
"""

from __future__ import annotations

import re
from pathlib import Path

from anomaly_api.artifacts import (
    ArtifactError,
    ArtifactNotFoundError,
    latest_version,
    set_latest,
    validate_version_name,
)

__all__ = ["DEFAULT_MODEL", "model_dir", "register_version", "resolve_alias", "validate_model_name"]

DEFAULT_MODEL = "default"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS_DIR = "aliases"


def validate_model_name(name: str) -> str:
    """Refuse names that could escape the artifact directory (lower case, digits, _ and -)."""
    if not _NAME.fullmatch(name):
        raise ArtifactError(
            f"invalid model name {name!r}: use lower-case letters, digits, '_' and '-' (max 63)"
        )
    return name


def model_dir(artifacts_dir: Path, name: str) -> Path:
    """Where the model ``name`` keeps its versions (``default``: the directory itself)."""
    validate_model_name(name)
    return artifacts_dir if name == DEFAULT_MODEL else artifacts_dir / "models" / name


def register_version(artifacts_dir: Path, name: str, version: str) -> None:
    """Make ``version`` (already saved under ``model_dir``) the model's latest version."""
    set_latest(model_dir(artifacts_dir, name), version)


def resolve_alias(artifacts_dir: Path, name: str, alias: str = "production") -> str:
    """The version ``alias`` of model ``name`` points at, else its ``LATEST``.

    ``ArtifactNotFoundError`` when the model has neither (no such model)."""
    directory = model_dir(artifacts_dir, name)
    validate_version_name(alias)
    pointer = directory / _ALIAS_DIR / alias
    if pointer.is_file():
        return validate_version_name(pointer.read_text(encoding="utf-8").strip())
    version = latest_version(directory)
    if version is None:
        raise ArtifactNotFoundError(f"no model {name!r} in {artifacts_dir}")
    return version
