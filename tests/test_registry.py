"""The model registry: names, aliases, promotion, rollback and deletion, on real files."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from anomaly_api import registry
from anomaly_api.artifacts import ArtifactManifest, latest_version, read_manifest
from factories import fit_tiny_artifact


def _fit(root: Path, name: str, version: str, seed: int = 0, **register: Any) -> dict[str, Any]:
    """Fit ``version`` of ``name`` without touching ``LATEST``, then register it."""
    fit_tiny_artifact(registry.model_dir(root, name), version, seed=seed)
    directory = registry.model_dir(root, name)
    if len(list(directory.glob("*/manifest.json"))) > 1:  # save_artifact moved LATEST: undo
        (directory / "LATEST").write_text(registry.resolve_alias(root, name) + "\n")
    return registry.register_version(root, name, version, **register)


def _with_f1(root: Path, name: str, version: str, f1: float) -> None:
    """Record a held-out F1 in ``version``'s manifest (as training writes it)."""
    path = registry.model_dir(root, name) / version / "manifest.json"
    manifest = ArtifactManifest.model_validate_json(path.read_bytes())
    metrics = {"test": {"detectors": {"ensemble": {"f1": f1}}}}
    path.write_text(manifest.model_copy(update={"metrics": metrics}).model_dump_json())


@pytest.mark.parametrize("name", ["a", "pump-7", "line_3.v2", "0", "x" * 63])
def test_good_names_are_accepted(name: str) -> None:
    assert registry.validate_model_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "-x", ".", "..", "../etc", "a/b", "a\\b", "x" * 64, "pümp", "a b", "a\n"]
)
def test_names_that_could_escape_or_confuse_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        registry.validate_model_name(name)
    with pytest.raises(ValueError, match="invalid model name"):
        registry.model_dir(Path("/srv/artifacts"), name)


def test_default_is_the_artifact_directory_and_others_live_under_models(tmp_path: Path) -> None:
    assert registry.model_dir(tmp_path, "default") == tmp_path
    assert registry.model_dir(tmp_path, "pumps") == tmp_path / "models" / "pumps"


def test_an_old_artifact_directory_serves_latest_as_production(tiny_artifacts_dir: Path) -> None:
    assert registry.list_models(tiny_artifacts_dir) == ["default"]
    assert registry.resolve_alias(tiny_artifacts_dir, "default") == "tiny-1"
    assert not (tiny_artifacts_dir / registry.ALIASES_FILE).exists()  # read as it is
    with pytest.raises(registry.ModelNotFoundError, match="no alias 'candidate'"):
        registry.resolve_alias(tiny_artifacts_dir, "default", "candidate")
    with pytest.raises(registry.ModelNotFoundError, match="unknown model 'pumps'"):
        registry.resolve_alias(tiny_artifacts_dir, "pumps")


def test_the_first_version_is_production_and_later_ones_candidates(tmp_path: Path) -> None:
    first = _fit(tmp_path, "pumps", "v1")
    assert first["promoted"]
    assert first["why"] == "no production version"
    second = _fit(tmp_path, "pumps", "v2", seed=1)
    assert not second["promoted"]
    assert second["why"] == "auto_promote is off"
    assert registry.resolve_alias(tmp_path, "pumps") == "v1"
    assert registry.resolve_alias(tmp_path, "pumps", "candidate") == "v2"
    assert registry.list_models(tmp_path) == ["pumps"]


def test_auto_promotion_follows_the_held_out_rule_and_records_both_figures(
    tmp_path: Path,
) -> None:
    _fit(tmp_path, "pumps", "v1")
    _with_f1(tmp_path, "pumps", "v1", 0.80)
    fit_tiny_artifact(registry.model_dir(tmp_path, "pumps"), "v2", seed=1)
    _with_f1(tmp_path, "pumps", "v2", 0.70)
    worse = registry.register_version(tmp_path, "pumps", "v2", auto_promote=True)
    assert worse == {
        "rule": registry.PROMOTION_RULE,
        "candidate": 0.70,
        "production": 0.80,
        "promoted": False,
        "why": "auto_promote",
    }
    fit_tiny_artifact(registry.model_dir(tmp_path, "pumps"), "v3", seed=2)
    _with_f1(tmp_path, "pumps", "v3", 0.80)  # not worse: promoted
    assert registry.register_version(tmp_path, "pumps", "v3", auto_promote=True)["promoted"]
    assert registry.resolve_alias(tmp_path, "pumps") == "v3"
    log = registry.read_aliases(tmp_path, "pumps").log
    assert log[-1]["promotion"]["candidate"] == 0.80
    assert log[-1]["promotion"]["production"] == 0.80


def test_production_moves_latest_too_and_rollback_steps_back(tmp_path: Path) -> None:
    _fit(tmp_path, "pumps", "v1")
    _fit(tmp_path, "pumps", "v2", seed=1)
    _fit(tmp_path, "pumps", "v3", seed=2)
    directory = registry.model_dir(tmp_path, "pumps")
    assert registry.set_alias(tmp_path, "pumps", "production", "v2") == "v1"
    assert registry.set_alias(tmp_path, "pumps", "production", "v3") == "v2"
    assert latest_version(directory) == "v3"
    assert registry.rollback(tmp_path, "pumps") == ("v3", "v2")
    assert latest_version(directory) == "v2"
    assert registry.rollback(tmp_path, "pumps") == ("v2", "v1")
    with pytest.raises(registry.RegistryConflictError, match="no earlier version"):
        registry.rollback(tmp_path, "pumps")
    assert registry.resolve_alias(tmp_path, "pumps") == "v1"


def test_a_version_an_alias_names_cannot_be_deleted(tmp_path: Path) -> None:
    _fit(tmp_path, "pumps", "v1")
    _fit(tmp_path, "pumps", "v2", seed=1)
    with pytest.raises(registry.RegistryConflictError, match=r"\['candidate'\]"):
        registry.delete_version(tmp_path, "pumps", "v2")
    with pytest.raises(registry.RegistryConflictError, match="production"):
        registry.delete_version(tmp_path, "pumps", "v1")
    registry.set_alias(tmp_path, "pumps", "candidate", "v1")
    registry.delete_version(tmp_path, "pumps", "v2")
    directory = registry.model_dir(tmp_path, "pumps")
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == [
        "ALIASES.json",
        "LATEST",
        "v1",
    ]
    with pytest.raises(registry.ModelNotFoundError, match="no version 'v2'"):
        registry.set_alias(tmp_path, "pumps", "production", "v2")


def test_an_interrupted_alias_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fit(tmp_path, "pumps", "v1")
    _fit(tmp_path, "pumps", "v2", seed=1)
    path = registry.model_dir(tmp_path, "pumps") / registry.ALIASES_FILE
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        registry.set_alias(tmp_path, "pumps", "staging", "v2")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert json.loads(before)["aliases"]["production"] == "v1"
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".ALIASES")]
    assert leftovers == []


def test_default_gets_aliases_beside_its_old_layout(tmp_path: Path) -> None:
    shutil.copytree(Path(fit_tiny_artifact(tmp_path / "src")).parent, tmp_path / "art")
    root = tmp_path / "art"
    fit_tiny_artifact(root, "tiny-2", seed=1)  # moves LATEST, as `anomaly-api train` does
    assert registry.resolve_alias(root, "default") == "tiny-2"
    registry.set_alias(root, "default", "production", "tiny-1")
    assert latest_version(root) == "tiny-1"
    assert read_manifest(root, "tiny-1").version == "tiny-1"
    assert registry.read_aliases(root, "default").production_history == ["tiny-2", "tiny-1"]
    assert registry.rollback(root, "default") == ("tiny-1", "tiny-2")


def test_the_listing_reads_a_model_again_only_when_its_files_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fit(tmp_path, "a", "a1", seed=1)
    _fit(tmp_path, "a", "a2", seed=3)
    _fit(tmp_path, "b", "b1", seed=2)
    long_ago = time.time() - 60
    for path in tmp_path.rglob("*"):
        os.utime(path, (long_ago, long_ago))
    listing = registry.RegistryListing(tmp_path)
    first = listing.models()
    assert first == [
        ("a", {"candidate": "a2", "production": "a1"}),
        ("b", {"candidate": "b1", "production": "b1"}),
    ]
    assert [name for name, _ in first] == registry.list_models(tmp_path)
    reads: list[str] = []
    real = registry.read_aliases

    def counted(root: Path, name: str) -> registry.AliasState:
        reads.append(name)
        return real(root, name)

    monkeypatch.setattr(registry, "read_aliases", counted)
    assert listing.models() == first
    assert reads == []  # unchanged files are not read again
    registry.set_alias(tmp_path, "a", "production", "a2")
    reads.clear()
    assert listing.models()[0] == ("a", {"candidate": "a2", "production": "a2"})
    assert listing.models()[0] == ("a", {"candidate": "a2", "production": "a2"})
    assert reads == ["a", "a"]  # written this second: read every time (coarse file clocks)
    shutil.rmtree(registry.model_dir(tmp_path, "b"))
    assert [name for name, _ in listing.models()] == ["a"]
