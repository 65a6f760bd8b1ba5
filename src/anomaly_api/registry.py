"""Named models: each one a directory of verified versions (``artifacts``) with aliases.

Layout: the model ``default`` is the artifact directory itself (today's single model, read
as it is); any other model ``<name>`` lives in ``<artifacts_dir>/models/<name>/`` with the
same layout. Aliases (``production``, ``candidate``, ...) are a JSON object in
``ALIASES.json`` beside the versions, replaced atomically; ``production`` falls back to the
``LATEST`` pointer while no alias names it, so an old artifact directory serves unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from anomaly_api.artifacts import (
    ArtifactNotFoundError,
    latest_version,
    read_manifest,
    validate_version_name,
    write_atomically,
)

__all__ = ["model_dir", "register_version", "resolve_alias", "validate_model_name"]

DEFAULT_MODEL = "default"
MODELS_DIR = "models"
ALIASES_FILE = "ALIASES.json"
PRODUCTION = "production"
CANDIDATE = "candidate"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def validate_model_name(name: str) -> str:
    """``name`` when it is a model name (``[a-z0-9][a-z0-9_.-]{0,62}``); ValueError otherwise,
    so no name can reach outside the artifact directory (no ``/``, no leading dot)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (max 63)"
        )
    return name


def model_dir(artifacts_dir: Path, name: str) -> Path:
    """The directory holding the versions of model ``name``."""
    if validate_model_name(name) == DEFAULT_MODEL:
        return artifacts_dir
    return artifacts_dir / MODELS_DIR / name


def _aliases(directory: Path) -> dict[str, str]:
    path = directory / ALIASES_FILE
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text())
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def register_version(artifacts_dir: Path, name: str, version: str) -> None:
    """Point ``candidate`` at a saved ``version`` of ``name`` (and ``production`` too when
    the model has no production version yet)."""
    directory = model_dir(artifacts_dir, name)
    read_manifest(directory, version)  # ArtifactNotFoundError unless it was saved
    aliases = _aliases(directory)
    aliases[CANDIDATE] = version
    if PRODUCTION not in aliases and latest_version(directory) is None:
        aliases[PRODUCTION] = version
    payload = json.dumps(aliases, indent=2, sort_keys=True).encode()
    write_atomically(directory / ALIASES_FILE, payload)


def resolve_alias(artifacts_dir: Path, name: str, alias: str = PRODUCTION) -> str:
    """The version ``alias`` of model ``name`` names (``production``: ``LATEST`` when unset)."""
    directory = model_dir(artifacts_dir, name)
    version = _aliases(directory).get(alias)
    if version is None and alias == PRODUCTION:
        version = latest_version(directory)
    if version is None:
        raise ArtifactNotFoundError(f"model {name!r} has no version aliased {alias!r}")
    return validate_version_name(version)
