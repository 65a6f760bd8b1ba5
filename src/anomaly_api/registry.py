"""Named models, their versions and their aliases, kept in the artifact directory.

Layout (the artifact directory is the store; replicas may share it)::

    <artifacts_dir>/                      the model named ``default`` (today's layout, as is)
        <version>/model.joblib + manifest.json
        LATEST                            ``default``'s production version when no alias says
        ALIASES.json                      aliases and their history (once one was set)
        models/<name>/                    every other model, in the same layout
            <version>/...  LATEST  ALIASES.json

An alias names a version (``production`` is the one served, ``candidate`` the newest
trained). ``ALIASES.json`` is rewritten whole (a temporary file, then ``os.replace``) under
an exclusive lock on ``.aliases.lock``, so a crash mid-write leaves the old file and two
writers never lose each other's change. Setting ``production`` also points ``LATEST`` at the
version, so a replica or tool that only knows ``LATEST`` serves the same one.

Each move of ``production`` is appended to its history; ``rollback`` steps back one entry.
A version an alias points at (or ``LATEST``) cannot be deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomaly_api.artifacts import (
    LATEST_FILE,
    MANIFEST_FILE,
    ArtifactError,
    ArtifactManifest,
    ArtifactNotFoundError,
    latest_version,
    list_versions,
    read_manifest,
    set_latest,
    validate_version_name,
    write_atomically,
)
from anomaly_api.names import MODEL_NAME, validate_model_name

__all__ = [
    "CANDIDATE",
    "DEFAULT_MODEL",
    "PRODUCTION",
    "AliasState",
    "ModelNotFoundError",
    "RegistryConflictError",
    "RegistryListing",
    "delete_version",
    "held_out_f1",
    "list_models",
    "model_dir",
    "model_exists",
    "read_aliases",
    "register_version",
    "resolve_alias",
    "rollback",
    "set_alias",
    "validate_model_name",
]

DEFAULT_MODEL = "default"
PRODUCTION = "production"
CANDIDATE = "candidate"
MODELS_DIR = "models"
ALIASES_FILE = "ALIASES.json"
_LOCK_FILE = ".aliases.lock"
_MAX_LOG = 200
"""Alias moves kept in the file's log (the production history is kept whole)."""


class ModelNotFoundError(ArtifactNotFoundError):
    """No model of that name, or no such alias or version of it."""


class RegistryConflictError(ArtifactError):
    """The change would break an alias (deleting a version it names, nothing to roll back to)."""


def model_dir(artifacts_dir: Path, name: str) -> Path:
    """The directory of ``name``'s versions; ``default`` is the artifact directory itself."""
    validate_model_name(name)
    return artifacts_dir if name == DEFAULT_MODEL else artifacts_dir / MODELS_DIR / name


def model_exists(artifacts_dir: Path, name: str) -> bool:
    """Whether ``name`` has at least one version (or a ``LATEST`` pointer)."""
    directory = model_dir(artifacts_dir, name)
    if not directory.is_dir():
        return False
    if (directory / "LATEST").is_file():
        return True
    return any((entry / MANIFEST_FILE).is_file() for entry in directory.iterdir())


def list_models(artifacts_dir: Path) -> list[str]:
    """Every model's name: ``default`` first (when it has a version), then the others sorted."""
    return [name for name, _ in RegistryListing(artifacts_dir).models()]


_Stamp = tuple[int, int, int] | None
"""A file's inode, size and modification time (ns); None when it is missing."""
_SETTLED_NS = 1_000_000_000
"""How old a file's modification time must be before its content is kept: file system
clocks tick coarsely, so two writes in one tick could share a stamp; never a second apart."""


def _stamp(path: str) -> _Stamp:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class RegistryListing:
    """Every model's name and aliases, for listings (``GET /models``, the OIP index).

    A model's alias file and ``LATEST`` are read and parsed again only when one of them
    changed (every write replaces the file, so its inode, size or time changes): listing
    a thousand models costs two ``stat`` calls each, not a read and a JSON parse each.
    Changes (``set_alias`` and the others) never read through it.
    """

    def __init__(self, artifacts_dir: Path) -> None:
        self.artifacts_dir = artifacts_dir
        self._known: dict[str, tuple[tuple[_Stamp, _Stamp], dict[str, str]]] = {}

    def models(self) -> list[tuple[str, dict[str, str]]]:
        """``(name, aliases)`` of every model, in ``list_models``' order (blocking: runs
        ``stat`` on each model's files)."""
        names = [DEFAULT_MODEL]
        root = self.artifacts_dir / MODELS_DIR
        if root.is_dir():
            with os.scandir(root) as entries:
                found = (e.name for e in entries if MODEL_NAME.fullmatch(e.name) and e.is_dir())
                names += sorted(found)
        known: dict[str, tuple[tuple[_Stamp, _Stamp], dict[str, str]]] = {}
        out = []
        base = str(self.artifacts_dir)
        for name in names:  # paths as strings: a thousand Path objects cost more than the stats
            directory = base if name == DEFAULT_MODEL else f"{base}/{MODELS_DIR}/{name}"
            stamps = (_stamp(f"{directory}/{ALIASES_FILE}"), _stamp(f"{directory}/{LATEST_FILE}"))
            entry = self._known.get(directory)
            if entry is None or entry[0] != stamps:
                if stamps[1] is None and not model_exists(self.artifacts_dir, name):
                    continue
                entry = stamps, read_aliases(self.artifacts_dir, name).aliases
            if self._settled(stamps):
                known[directory] = entry
            out.append((name, dict(entry[1])))
        self._known = known
        return out

    @staticmethod
    def _settled(stamps: tuple[_Stamp, _Stamp]) -> bool:
        now = time.time_ns()
        return all(s is None or now - s[2] > _SETTLED_NS for s in stamps)


@dataclass
class AliasState:
    """The content of ``ALIASES.json``."""

    aliases: dict[str, str] = field(default_factory=dict)
    production_history: list[str] = field(default_factory=list)
    """Every version ``production`` named, oldest first; the last is the current one."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """The latest alias moves (alias, version, previous, reason, at, and a promotion's rule
    and figures), oldest first."""

    def to_json(self) -> bytes:
        body = {
            "aliases": self.aliases,
            "production_history": self.production_history,
            "log": self.log[-_MAX_LOG:],
        }
        return json.dumps(body, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AliasState:
        body = json.loads(raw)
        return cls(
            aliases={str(k): str(v) for k, v in body.get("aliases", {}).items()},
            production_history=[str(v) for v in body.get("production_history", [])],
            log=list(body.get("log", [])),
        )


def read_aliases(artifacts_dir: Path, name: str) -> AliasState:
    """``name``'s aliases; a model without ``ALIASES.json`` has ``production`` = ``LATEST``."""
    directory = model_dir(artifacts_dir, name)
    path = directory / ALIASES_FILE
    if path.is_file():
        try:
            state = AliasState.from_json(path.read_bytes())
        except (ValueError, AttributeError, TypeError) as exc:
            raise ArtifactError(f"{path} is not a valid alias file: {exc}") from exc
    else:
        state = AliasState()
    if PRODUCTION not in state.aliases:
        latest = latest_version(directory)
        if latest is not None:
            state.aliases[PRODUCTION] = latest
            state.production_history = state.production_history or [latest]
    return state


def resolve_alias(artifacts_dir: Path, name: str, alias: str = PRODUCTION) -> str:
    """The version ``alias`` of ``name`` points at (``ModelNotFoundError`` when none)."""
    validate_model_name(alias)
    if not model_exists(artifacts_dir, name):
        raise ModelNotFoundError(f"unknown model {name!r}")
    version = read_aliases(artifacts_dir, name).aliases.get(alias)
    if version is None:
        raise ModelNotFoundError(f"model {name!r} has no alias {alias!r}")
    return version


@contextlib.contextmanager
def _locked(artifacts_dir: Path, name: str) -> Iterator[Path]:
    """An exclusive lock on ``name``'s aliases (between processes too); yields its directory."""
    directory = model_dir(artifacts_dir, name)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _move(
    directory: Path,
    state: AliasState,
    alias: str,
    version: str,
    *,
    reason: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Point ``alias`` at ``version`` in ``state`` (and ``LATEST`` for production), logged."""
    previous = state.aliases.get(alias)
    state.aliases[alias] = version
    history = state.production_history
    if alias == PRODUCTION and reason != "rollback" and (not history or history[-1] != version):
        history.append(version)
    entry = {"alias": alias, "version": version, "previous": previous, "reason": reason}
    state.log.append({**entry, "at": time.time(), **(extra or {})})
    if alias == PRODUCTION:
        set_latest(directory, version)


def _save(directory: Path, state: AliasState) -> None:
    write_atomically(directory / ALIASES_FILE, state.to_json())


def _check_version(directory: Path, name: str, version: str) -> ArtifactManifest:
    try:
        return read_manifest(directory, validate_version_name(version))
    except ArtifactNotFoundError:
        raise ModelNotFoundError(f"model {name!r} has no version {version!r}") from None


def held_out_f1(manifest: ArtifactManifest) -> float | None:
    """The version's F1 on its held-out test rows (None when it was not evaluated): the
    ensemble's for a point-wise model, the model's own for a time-aware one."""
    test = (manifest.metrics or {}).get("test")
    if not isinstance(test, dict):
        return None
    value = test.get("f1", test.get("detectors", {}).get("ensemble", {}).get("f1"))
    return float(value) if isinstance(value, int | float) else None


PROMOTION_RULE = "candidate held-out F1 >= production held-out F1"


def register_version(
    artifacts_dir: Path, name: str, version: str, *, auto_promote: bool = False
) -> dict[str, Any]:
    """Point ``candidate`` at a freshly saved ``version`` (and ``production`` when the model
    has none yet, or with ``auto_promote`` when its held-out F1 is not worse than
    production's). Returns the promotion decision: rule, both figures, promoted or not."""
    with _locked(artifacts_dir, name) as directory:
        manifest = _check_version(directory, name, version)
        state = read_aliases(artifacts_dir, name)
        _move(directory, state, CANDIDATE, version, reason="registered")
        current = state.aliases.get(PRODUCTION)
        decision: dict[str, Any] = {"rule": PROMOTION_RULE, "candidate": held_out_f1(manifest)}
        if current is None or current == version:
            decision |= {"production": None, "promoted": True, "why": "no production version"}
        else:
            serving = held_out_f1(read_manifest(directory, current))
            candidate = decision["candidate"]
            promoted = candidate is not None and (serving is None or candidate >= serving)
            why = "auto_promote" if auto_promote else "auto_promote is off"
            decision |= {"production": serving, "promoted": promoted and auto_promote, "why": why}
        if decision["promoted"]:
            _move(
                directory,
                state,
                PRODUCTION,
                version,
                reason="promoted",
                extra={"promotion": decision},
            )
        _save(directory, state)
        return decision


def set_alias(artifacts_dir: Path, name: str, alias: str, version: str) -> str | None:
    """Point ``alias`` of ``name`` at an existing ``version``; returns the version it named."""
    validate_model_name(alias)
    if not model_exists(artifacts_dir, name):
        raise ModelNotFoundError(f"unknown model {name!r}")
    with _locked(artifacts_dir, name) as directory:
        _check_version(directory, name, version)
        state = read_aliases(artifacts_dir, name)
        previous = state.aliases.get(alias)
        _move(directory, state, alias, version, reason="set")
        _save(directory, state)
        return previous


def rollback(artifacts_dir: Path, name: str) -> tuple[str, str]:
    """Move ``production`` back to the version it named before; returns (from, to)."""
    if not model_exists(artifacts_dir, name):
        raise ModelNotFoundError(f"unknown model {name!r}")
    with _locked(artifacts_dir, name) as directory:
        state = read_aliases(artifacts_dir, name)
        history = state.production_history
        if len(history) < 2:
            raise RegistryConflictError(f"model {name!r}: production has no earlier version")
        current = history.pop()
        _move(
            directory,
            state,
            PRODUCTION,
            history[-1],
            reason="rollback",
            extra={"rolled_back": current},
        )
        _save(directory, state)
        return current, history[-1]


def delete_version(artifacts_dir: Path, name: str, version: str) -> None:
    """Delete a version no alias (nor ``LATEST``) points at; ``RegistryConflictError`` if one
    does. The directory is renamed away first, so a crash never leaves half a version."""
    if not model_exists(artifacts_dir, name):
        raise ModelNotFoundError(f"unknown model {name!r}")
    with _locked(artifacts_dir, name) as directory:
        _check_version(directory, name, version)
        state = read_aliases(artifacts_dir, name)
        holding = sorted(a for a, v in state.aliases.items() if v == version)
        if holding or latest_version(directory) == version:
            raise RegistryConflictError(
                f"model {name!r}: version {version!r} is named by {holding or ['LATEST']}; "
                "point the alias elsewhere first"
            )
        doomed = directory / f".deleting-{version}-{uuid.uuid4().hex[:8]}"
        os.replace(directory / version, doomed)
        if version in state.production_history:
            state.production_history = [v for v in state.production_history if v != version]
            _save(directory, state)
    shutil.rmtree(doomed, ignore_errors=True)


def versions_of(artifacts_dir: Path, name: str) -> list[ArtifactManifest]:
    """Manifests of ``name``'s versions, oldest first (``ModelNotFoundError`` when none)."""
    if not model_exists(artifacts_dir, name):
        raise ModelNotFoundError(f"unknown model {name!r}")
    return list_versions(model_dir(artifacts_dir, name))


def version_summary(manifest: ArtifactManifest) -> dict[str, Any]:
    """What ``GET /models/{name}`` says of one version."""
    return {
        "version": manifest.version,
        "created_at": manifest.created_at.isoformat(),
        "kind": "point-wise" if manifest.time_aware is None else "time-aware",
        "features": list(manifest.feature_names),
        "thresholds": {d.name: d.threshold for d in manifest.detectors},
        "held_out_f1": held_out_f1(manifest),
        "parent_version": manifest.parent_version,
    }


def model_summary(artifacts_dir: Path, name: str) -> dict[str, Any]:
    """A model's aliases, production history and versions (newest first)."""
    manifests = versions_of(artifacts_dir, name)
    state = read_aliases(artifacts_dir, name)
    production = state.aliases.get(PRODUCTION)
    served = next((m for m in manifests if m.version == production), None)
    return {
        "name": name,
        "aliases": dict(sorted(state.aliases.items())),
        "production_history": state.production_history,
        "kind": None if served is None else version_summary(served)["kind"],
        "features": None if served is None else list(served.feature_names),
        "versions": [version_summary(m) for m in reversed(manifests)],
        "alias_log": state.log[-20:],
    }
