"""Versioned, verified model artifacts.

Layout::

    <artifacts_dir>/<version>/model.joblib     the fitted AnomalyEnsemble
    <artifacts_dir>/<version>/manifest.json    provenance, metrics and the model's SHA-256
    <artifacts_dir>/<version>/<attachment>     optional data files (drift reference, scores)
    <artifacts_dir>/LATEST                     the current version's name

``load_artifact`` hashes the model file and compares it with the manifest *before*
unpickling it: unpickling runs code, so a tampered file must never reach joblib.
Attachments are data (JSON, ``.npz`` without pickle) listed in the manifest with their
SHA-256; ``attachment_path`` verifies one before handing out its path, and a file the
manifest does not list is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field

from anomaly_api.detection import SCORE_DEFINITION, AnomalyEnsemble
from anomaly_api.detection.time_aware import TimeAwareModel

FORMAT_VERSION = 3
"""3: every robust scale comes from ``anomaly_api.detection.scaling`` (a time-aware
model's channels divide their IQR by that of a standard normal to full precision, every
MAD by Φ⁻¹(3/4)). 2: the model scales its inputs itself and its members are
configurable. Format 2 models load and score exactly as they were fitted (their scales
are stored in them, never refitted); format 1 models (unscaled, fixed members) are
refused on load: retrain them."""
OLDEST_FORMAT_VERSION = 2
"""The oldest format this version loads."""
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ArtifactError(Exception):
    """Base class: an artifact cannot be saved or loaded."""


class ArtifactNotFoundError(ArtifactError):
    """No artifact (or no such version) in the artifact directory."""


class ArtifactIntegrityError(ArtifactError):
    """The model file does not match the SHA-256 recorded in its manifest."""


class ArtifactVersionMismatchError(ArtifactError):
    """The artifact was trained with other library versions and refusal was asked for."""


class ArtifactVersionWarning(UserWarning):
    """The artifact was trained with other library versions than the running ones."""


class FeatureStats(BaseModel):
    """Training statistics of one feature."""

    mean: float
    std: float
    min: float
    max: float


class DetectorInfo(BaseModel):
    """One detector of the ensemble as served."""

    name: str
    threshold: float = Field(description="Votes anomaly when its score_samples is below this.")
    scale: float = Field(description="IQR of its training scores; divides its margin.")
    n_components: int | None = Field(
        default=None, description="PCA member only: principal components retained."
    )


class FeatureScaling(BaseModel):
    """How one feature is standardised before every member sees it."""

    center: float = Field(description="Median of the training rows.")
    scale: float = Field(
        description="IQR over that of a standard normal, the standard deviation where "
        "the IQR is 0, or max(|center|, 1) * 1e-6 where the feature is constant in training."
    )
    rule: Literal["iqr", "std", "floor"]


class TrainingDataInfo(BaseModel):
    """Where the model's training data came from."""

    source: str
    fingerprint: str = Field(description="SHA-256 of the feature names and float64 values.")
    n_rows: int
    n_fit_rows: int


class TimeAwareInfo(BaseModel):
    """How a time-aware model reads a stream (absent for point-wise models)."""

    window: int = Field(description="Readings in the trailing window, the newest included.")
    short_window: int
    features: list[str] = Field(description="Window features computed for every channel.")
    window_feature_names: list[str]
    detector: str
    relations: str
    median_interval_seconds: float
    max_gap_factor: float = Field(description="A gap above this many intervals restarts.")
    history_readings: int = Field(description="Readings a stream must hold to leave warm-up.")
    follow_memory: int = Field(
        default=0,
        description="Memory in readings of the level and spread each reading is also judged "
        "against (the follow feature); 0 for none.",
    )
    timestamp_column: str | None = None
    stream_column: str | None = None


class FittedModelInfo(BaseModel):
    """The trained version whose fitted estimators a threshold revision serves."""

    version: str = Field(description="The trained version (the root of the revision chain).")
    model_sha256: str = Field(description="SHA-256 of that version's model file.")


class ArtifactManifest(BaseModel):
    """Everything known about one model version, stored next to it as JSON."""

    model_config = ConfigDict(protected_namespaces=())

    format_version: int = 1
    """Absent in format 1 manifests, so it defaults to 1; ``build_manifest`` writes
    ``FORMAT_VERSION``."""
    version: str
    created_at: datetime
    feature_names: list[str]
    feature_stats: dict[str, FeatureStats]
    detectors: list[DetectorInfo]
    min_votes: int
    vote_rule: str
    scaling: dict[str, FeatureScaling] | None = Field(
        default=None, description="Per-feature input standardisation (format 2 and later)."
    )
    contributions: str | None = Field(
        default=None, description="How each feature's share of an anomaly is computed."
    )
    severity: str | None = Field(default=None, description="How severity is computed.")
    score_definition: str
    params: dict[str, Any]
    training_data: TrainingDataInfo
    metrics: dict[str, Any] | None = None
    library_versions: dict[str, str]
    model_file: str = MODEL_FILE
    model_sha256: str = ""
    time_aware: TimeAwareInfo | None = None
    """Set for a time-aware model (``anomaly-api train --window``); older manifests lack it."""
    attachments: dict[str, str] = Field(
        default_factory=dict,
        description="Data files next to the model (drift reference, kept scores): name -> SHA-256.",
    )
    parent_version: str | None = Field(
        default=None, description="The version this one was retuned from (`anomaly-api tune`)."
    )
    tuning: dict[str, Any] | None = Field(
        default=None,
        description="How the thresholds were moved: objective, before/after, expected rates.",
    )
    fitted_model: FittedModelInfo | None = Field(
        default=None,
        description="A threshold revision's root: the trained version it was derived from "
        "(carried down a chain of revisions). Absent for a trained version, which is its own, "
        "and in revisions written before it was recorded (see `fitted_model_of`).",
    )


def fitted_model_of(manifest: ArtifactManifest) -> FittedModelInfo:
    """The trained version whose fit ``manifest``'s version serves.

    A threshold revision records it (``fitted_model``); a trained version, and a revision
    saved before the field existed, is its own: the version and its model file's hash.
    A revision of such an old revision therefore records the old revision, which is the
    root the old revision itself reports -- the chain stays consistent without walking it.
    """
    if manifest.fitted_model is not None:
        return manifest.fitted_model
    return FittedModelInfo(version=manifest.version, model_sha256=manifest.model_sha256)


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified model with its manifest."""

    model: AnomalyEnsemble
    manifest: ArtifactManifest
    path: Path


@dataclass(frozen=True)
class TimeAwareArtifact:
    """A loaded, verified time-aware model with its manifest."""

    model: TimeAwareModel
    manifest: ArtifactManifest
    path: Path


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def data_fingerprint(feature_names: list[str], X: np.ndarray[Any, Any]) -> str:
    """SHA-256 of the feature names, the shape and the float64 values of ``X``."""
    digest = hashlib.sha256()
    digest.update(json.dumps(feature_names).encode())
    values = np.ascontiguousarray(X, dtype=np.float64)
    digest.update(str(values.shape).encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_version_name(version: str) -> str:
    """Refuse names that could escape the artifact directory or confuse a shell."""
    if not _VERSION_PATTERN.fullmatch(version):
        raise ArtifactError(
            f"invalid model version {version!r}: use letters, digits, '.', '_' and '-' (max 100)"
        )
    return version


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` at once: a reader sees the old or the new content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp creates 0600; a service running as another user (the container's
        # non-root user, a mounted host directory) must be able to read artifacts.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(
    model: AnomalyEnsemble | TimeAwareModel,
    manifest: ArtifactManifest,
    artifacts_dir: Path,
    *,
    make_latest: bool = True,
    overwrite: bool = False,
    attachments: Mapping[str, bytes] | None = None,
) -> Path:
    """Write model and manifest to ``artifacts_dir/<version>/`` and point ``LATEST`` at it.

    ``attachments`` (file name -> content) are written beside the model and their
    SHA-256 recorded in the manifest (see ``attachment_path``).
    """
    version = validate_version_name(manifest.version)
    target = artifacts_dir / version
    if target.exists() and not overwrite:
        raise ArtifactError(f"model version {version!r} already exists in {artifacts_dir}")
    target.mkdir(parents=True, exist_ok=True)
    model_path = target / MODEL_FILE
    joblib.dump(model, model_path)
    os.chmod(model_path, 0o644)  # readable by the serving user whatever the umask
    hashes: dict[str, str] = {}
    for name, content in (attachments or {}).items():
        if name in (MODEL_FILE, MANIFEST_FILE) or not _VERSION_PATTERN.fullmatch(name):
            raise ArtifactError(f"invalid attachment name {name!r}")
        write_atomically(target / name, content)
        hashes[name] = hashlib.sha256(content).hexdigest()
    final = manifest.model_copy(
        update={
            "model_file": MODEL_FILE,
            "model_sha256": file_sha256(model_path),
            "attachments": hashes,
        }
    )
    write_atomically(target / MANIFEST_FILE, final.model_dump_json(indent=2).encode())
    if make_latest:
        set_latest(artifacts_dir, version)
    return target


def set_latest(artifacts_dir: Path, version: str) -> None:
    """Point ``LATEST`` at an existing version."""
    validate_version_name(version)
    if not (artifacts_dir / version / MANIFEST_FILE).is_file():
        raise ArtifactNotFoundError(f"no model version {version!r} in {artifacts_dir}")
    write_atomically(artifacts_dir / LATEST_FILE, f"{version}\n".encode())


def attachment_path(directory: Path, manifest: ArtifactManifest, name: str) -> Path | None:
    """The verified path of attachment ``name`` of the version in ``directory``.

    ``None`` when the manifest lists no such attachment (a file that is there but not
    listed is ignored: it is not covered by the manifest). Raises
    ``ArtifactIntegrityError`` when the file is missing or its SHA-256 differs.
    """
    expected = manifest.attachments.get(name)
    if expected is None:
        return None
    path = directory / name
    if not path.is_file():
        raise ArtifactIntegrityError(f"attachment {path} listed in the manifest is missing")
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"integrity check failed for {path}: SHA-256 {actual} does not match "
            f"the manifest's {expected}; refusing to use it"
        )
    return path


def latest_version(artifacts_dir: Path) -> str | None:
    """The version ``LATEST`` names, or None when there is none."""
    pointer = artifacts_dir / LATEST_FILE
    if not pointer.is_file():
        return None
    return validate_version_name(pointer.read_text().strip())


def read_manifest(artifacts_dir: Path, version: str) -> ArtifactManifest:
    """Read and validate one version's manifest (does not touch the model file)."""
    path = artifacts_dir / validate_version_name(version) / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactNotFoundError(f"no model version {version!r} in {artifacts_dir}")
    try:
        return ArtifactManifest.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ArtifactError(f"manifest of {version!r} is invalid: {exc}") from exc


def list_versions(artifacts_dir: Path) -> list[ArtifactManifest]:
    """Manifests of every version in the directory, oldest first."""
    if not artifacts_dir.is_dir():
        return []
    manifests = [
        read_manifest(artifacts_dir, entry.name)
        for entry in artifacts_dir.iterdir()
        if (entry / MANIFEST_FILE).is_file() and _VERSION_PATTERN.fullmatch(entry.name)
    ]
    return sorted(manifests, key=lambda m: (m.created_at, m.version))


def _verified_model(
    artifacts_dir: Path, version: str | None, on_version_mismatch: Literal["warn", "error"]
) -> tuple[object, ArtifactManifest, Path]:
    chosen = version or latest_version(artifacts_dir)
    if chosen is None:
        raise ArtifactNotFoundError(f"no trained model in {artifacts_dir} (no {LATEST_FILE} file)")
    manifest = read_manifest(artifacts_dir, chosen)
    model_path = artifacts_dir / chosen / manifest.model_file
    if not model_path.is_file():
        raise ArtifactNotFoundError(f"model file {model_path} is missing")
    actual = file_sha256(model_path)
    if actual != manifest.model_sha256:
        raise ArtifactIntegrityError(
            f"integrity check failed for {model_path}: SHA-256 {actual} does not match "
            f"the manifest's {manifest.model_sha256}; refusing to load it"
        )
    for name in manifest.attachments:
        attachment_path(artifacts_dir / chosen, manifest, name)
    if manifest.format_version < OLDEST_FORMAT_VERSION:
        raise ArtifactError(
            f"model {chosen!r} has artifact format {manifest.format_version}, from before the "
            f"model scaled its own inputs; this version reads formats {OLDEST_FORMAT_VERSION} "
            f"to {FORMAT_VERSION}: retrain it with `anomaly-api train`"
        )
    if manifest.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"model {chosen!r} has artifact format {manifest.format_version}, newer than this "
            f"version reads ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}): upgrade anomaly-api"
        )
    _check_library_versions(manifest, on_version_mismatch)
    return joblib.load(model_path), manifest, model_path


def load_artifact(
    artifacts_dir: Path,
    version: str | None = None,
    *,
    on_version_mismatch: Literal["warn", "error"] = "warn",
) -> Artifact:
    """Verify and load a point-wise model version (``LATEST`` when ``version`` is None).

    Raises
    ------
    ArtifactNotFoundError
        No such version, or no ``LATEST`` pointer.
    ArtifactIntegrityError
        The model file's SHA-256 differs from the manifest's; nothing was unpickled.
    ArtifactVersionMismatchError
        Library versions differ and ``on_version_mismatch="error"``.
    ArtifactError
        The version holds a time-aware model (use ``load_any_artifact``).
    """
    model, manifest, model_path = _verified_model(artifacts_dir, version, on_version_mismatch)
    if isinstance(model, TimeAwareModel):
        raise ArtifactError(
            f"model {manifest.version!r} is time-aware (window {model.window}); "
            "it scores streams of readings, not single readings"
        )
    if not isinstance(model, AnomalyEnsemble):
        raise ArtifactError(f"{model_path} holds a {type(model).__name__}, not an AnomalyEnsemble")
    return Artifact(model=model, manifest=manifest, path=model_path.parent)


def load_any_artifact(
    artifacts_dir: Path,
    version: str | None = None,
    *,
    on_version_mismatch: Literal["warn", "error"] = "warn",
) -> Artifact | TimeAwareArtifact:
    """Like ``load_artifact``, but a time-aware model loads as a ``TimeAwareArtifact``."""
    model, manifest, model_path = _verified_model(artifacts_dir, version, on_version_mismatch)
    if isinstance(model, TimeAwareModel):
        return TimeAwareArtifact(model=model, manifest=manifest, path=model_path.parent)
    if not isinstance(model, AnomalyEnsemble):
        raise ArtifactError(
            f"{model_path} holds a {type(model).__name__}, not an AnomalyEnsemble "
            "or a TimeAwareModel"
        )
    return Artifact(model=model, manifest=manifest, path=model_path.parent)


def _check_library_versions(
    manifest: ArtifactManifest, on_version_mismatch: Literal["warn", "error"]
) -> None:
    running = library_versions()
    differing = {
        name: (trained, running[name])
        for name, trained in manifest.library_versions.items()
        if name in ("scikit-learn", "numpy", "scipy") and running.get(name) != trained
    }
    if not differing:
        return
    detail = ", ".join(f"{n} trained {t}, running {r}" for n, (t, r) in differing.items())
    message = f"model {manifest.version!r} was trained with other library versions: {detail}"
    if on_version_mismatch == "error":
        raise ArtifactVersionMismatchError(message)
    warnings.warn(message, ArtifactVersionWarning, stacklevel=3)


def feature_stats(
    feature_names: list[str], values: np.ndarray[Any, Any]
) -> dict[str, FeatureStats]:
    """Mean, standard deviation, minimum and maximum of each column of the fitted rows."""
    return {
        name: FeatureStats(
            mean=float(values[:, i].mean()),
            std=float(values[:, i].std()),
            min=float(values[:, i].min()),
            max=float(values[:, i].max()),
        )
        for i, name in enumerate(feature_names)
    }


def build_manifest(
    model: AnomalyEnsemble,
    feature_names: list[str],
    X_fit: np.ndarray[Any, Any],
    *,
    version: str,
    created_at: datetime,
    source: str,
    n_rows: int,
    metrics: dict[str, Any] | None = None,
) -> ArtifactManifest:
    """Describe a fitted ensemble; ``model_sha256`` is filled in by ``save_artifact``."""
    values = np.asarray(X_fit, dtype=np.float64)
    stats = feature_stats(feature_names, values)
    detectors = [
        DetectorInfo(
            name=name,
            threshold=float(offset),
            scale=float(scale),
            n_components=int(model.pca_.n_components_) if name == "pca" else None,
        )
        for name, offset, scale in zip(model.detectors_, model.offsets_, model.scales_, strict=True)
    ]
    scaling = {
        name: FeatureScaling(center=float(center), scale=float(scale), rule=str(rule))
        for name, center, scale, rule in zip(
            feature_names, model.center_, model.scale_, model.scale_rule_, strict=True
        )
    }
    residual = " + PCA residual r_j^2" if "pca" in model.detectors_ else ""
    return ArtifactManifest(
        format_version=FORMAT_VERSION,
        version=validate_version_name(version),
        created_at=created_at,
        feature_names=list(feature_names),
        feature_stats=stats,
        detectors=detectors,
        min_votes=model.min_votes,
        vote_rule=f"anomaly when >= {model.min_votes} of {len(model.detectors_)} detectors agree",
        scaling=scaling,
        contributions=f"share_j = c_j / sum(c), c_j = z_j^2{residual}, z = (x - center) / scale",
        severity="a / (1 + a), a = max(anomaly_score, 0)",
        score_definition=SCORE_DEFINITION,
        params=model.get_params(),
        training_data=TrainingDataInfo(
            source=source,
            fingerprint=data_fingerprint(list(feature_names), values),
            n_rows=n_rows,
            n_fit_rows=int(values.shape[0]),
        ),
        metrics=metrics,
        library_versions=library_versions(),
    )
