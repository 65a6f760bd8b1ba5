"""``anomaly-api train --model NAME``: the version lands in the registry, aliases set."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from anomaly_api import registry
from anomaly_api.artifacts import latest_version
from anomaly_api.cli.main import app

runner = CliRunner()


def train(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["train", *(str(a) for a in args)])
    return result.exit_code, result.stdout, result.stderr


def test_train_registers_named_versions_and_leaves_default_alone(tmp_path: Path) -> None:
    common = ("--artifacts-dir", tmp_path, "--model", "pumps", "--json")
    code, out, err = train(*common, "--version", "v1", "--seed", "1")
    assert code == 0, err
    first = json.loads(out)
    assert first["model"] == "pumps"
    assert first["promotion"]["promoted"] is True
    assert isinstance(first["promotion"]["candidate"], float)  # its held-out F1
    code, out, err = train(*common, "--version", "v2", "--seed", "2", "--no-auto-promote")
    assert code == 0, err
    assert json.loads(out)["promotion"]["promoted"] is False
    assert registry.resolve_alias(tmp_path, "pumps") == "v1"
    assert registry.resolve_alias(tmp_path, "pumps", "candidate") == "v2"
    assert latest_version(tmp_path) is None  # the default model is untouched
    assert registry.list_models(tmp_path) == ["pumps"]


def test_auto_promote_records_the_rule_and_both_figures(tmp_path: Path) -> None:
    common = ("--artifacts-dir", tmp_path, "--model", "pumps", "--json")
    assert train(*common, "--version", "v1", "--seed", "1")[0] == 0
    code, out, err = train(*common, "--version", "v2", "--seed", "1", "--auto-promote")
    assert code == 0, err
    decision = json.loads(out)["promotion"]
    assert decision["candidate"] == decision["production"]  # same data and seed: same F1
    assert decision["promoted"] is True  # not worse
    assert registry.resolve_alias(tmp_path, "pumps") == "v2"
    log = registry.read_aliases(tmp_path, "pumps").log
    assert log[-1]["promotion"]["rule"] == registry.PROMOTION_RULE


def test_bad_model_names_are_one_clean_error(tmp_path: Path) -> None:
    code, _, err = train("--artifacts-dir", tmp_path, "--model", "../up")
    assert code != 0
    assert "invalid model name" in err
    code, _, err = train("--artifacts-dir", tmp_path, "--auto-promote")
    assert code != 0
    assert "--auto-promote needs --model" in err
