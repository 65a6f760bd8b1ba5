"""``stream_key``: the model key streams are kept under names the fitted model (a revision's
root), the window and the feature names -- not the served version."""

from __future__ import annotations

import shutil
from pathlib import Path

from anomaly_api.artifacts import (
    TimeAwareArtifact,
    fitted_model_of,
    load_any_artifact,
    read_manifest,
)
from anomaly_api.service.cache import InMemoryPredictionCache
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.scorer import build_scorer
from anomaly_api.service.streamplane import key_version, stream_key
from anomaly_api.service.streams.base import MAX_MODEL_KEY_BYTES
from anomaly_api.training.revision import tune_version
from anomaly_api.training.tuning import Explicit, TargetFPR
from factories import fit_tiny_artifact

LONGEST_VERSION = 100  # artifacts.validate_version_name


def _predictor(artifacts: Path, version: str) -> Predictor:
    artifact = load_any_artifact(artifacts, version)
    fitted = (
        artifact.model.pointwise_ if isinstance(artifact, TimeAwareArtifact) else artifact.model
    )
    return Predictor(
        artifact,
        scorer=build_scorer(fitted, "sklearn"),
        cache=InMemoryPredictionCache(max_entries=10, ttl_s=60.0),
        cache_prefix="test:",
        offload_min_rows=64,
    )


def test_revisions_share_their_roots_key_other_fits_do_not(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    tune_version(artifacts, "tiny-1", TargetFPR(0.05), new_version="tiny-r1")
    tune_version(artifacts, "tiny-r1", Explicit({"zscore": -3.0}), new_version="tiny-r2")
    fit_tiny_artifact(artifacts, "tiny-2", seed=1)
    root = read_manifest(artifacts, "tiny-1")
    for revision in ("tiny-r1", "tiny-r2"):
        fitted = read_manifest(artifacts, revision).fitted_model
        assert fitted is not None
        assert (fitted.version, fitted.model_sha256) == ("tiny-1", root.model_sha256)
    assert fitted_model_of(root).version == "tiny-1"  # a trained version is its own root
    keys = {v: stream_key(_predictor(artifacts, v)) for v in ("tiny-1", "tiny-r1", "tiny-r2")}
    assert len(set(keys.values())) == 1
    assert keys["tiny-1"].startswith(f"tiny-1@{root.model_sha256[:16]}/w1/f")
    assert key_version(keys["tiny-r2"]) == "tiny-1"
    assert stream_key(_predictor(artifacts, "tiny-2")) != keys["tiny-1"]


def test_a_time_aware_key_names_its_window(ta_artifacts_dir: Path) -> None:
    key = stream_key(_predictor(ta_artifacts_dir, "ta-1"))
    assert key.startswith("ta-1@")
    assert "/w60/f" in key


def test_the_longest_version_fits_the_store_key_and_reads_back() -> None:
    key = f"{'v' * LONGEST_VERSION}@{'0' * 16}/w1024/f{'0' * 16}"
    assert len(key.encode()) <= MAX_MODEL_KEY_BYTES
    assert key_version(key) == "v" * LONGEST_VERSION
    assert key_version("plain-version") == "plain-version"  # a key written before: the version
