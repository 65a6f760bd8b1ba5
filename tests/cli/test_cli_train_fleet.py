"""``anomaly-api train-fleet``: one named model per group, in this process or on a real
2-worker Dask LocalCluster, each the same model ``anomaly-api train`` gives its rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import read_manifest
from anomaly_api.cli.main import app as cli
from anomaly_api.data.errors import DataError
from anomaly_api.data.synthetic import generate_sensor_data
from anomaly_api.registry import model_dir, resolve_alias
from anomaly_api.training.fleet import FleetGroup, model_name_of, split_groups, train_groups
from anomaly_api.training.pipeline import EnsembleConfig
from anomaly_api.training.request import TrainingRequest, ensemble_config

KINDS = ["Pump A", "pump B", "valve"]


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    frames = []
    for seed, kind in enumerate(KINDS):  # sizes 200, 300, 400: the Dask engine starts with valve
        frame = generate_sensor_data(200 + 100 * seed, seed=seed)
        frame["asset_kind"] = kind
        frames.append(frame)
    path = tmp_path / "fleet.parquet"
    pd.concat(frames).to_parquet(path, index=False)
    return path


def train_fleet(fleet_file: Path, artifacts: Path, *extra: str) -> dict[str, object]:
    args = ["train-fleet", "--data", str(fleet_file), "--group-column", "asset_kind"]
    result = CliRunner().invoke(cli, [*args, "--artifacts-dir", str(artifacts), "--json", *extra])
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def hashes(artifacts: Path, answer: dict[str, object]) -> dict[str, str]:
    models = answer["models"]
    assert isinstance(models, list)
    return {
        m["model"]: read_manifest(model_dir(artifacts, m["model"]), m["version"]).model_sha256
        for m in models
    }


def test_each_group_is_the_model_train_gives_its_rows(fleet_file: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "fleet"
    answer = train_fleet(fleet_file, artifacts, "--seed", "5")
    assert [m["model"] for m in answer["models"]] == ["pump-a", "pump-b", "valve"]  # type: ignore[union-attr]
    for model in ("pump-a", "pump-b", "valve"):
        version = resolve_alias(artifacts, model, "candidate")
        assert resolve_alias(artifacts, model) == version  # the first: production too
        assert not any((model_dir(artifacts, model) / ".staging").iterdir())
    alone = tmp_path / "valve.csv"
    frame = pd.read_parquet(fleet_file)
    frame[frame["asset_kind"] == "valve"].drop(columns=["asset_kind"]).to_csv(alone, index=False)
    single = tmp_path / "single"
    args = ["train", "--data", str(alone), "--artifacts-dir", str(single), "--seed", "5"]
    result = CliRunner().invoke(cli, [*args, "--version", "v"])
    assert result.exit_code == 0, result.output
    assert hashes(artifacts, answer)["valve"] == read_manifest(single, "v").model_sha256


def test_the_dask_engine_trains_the_same_models(fleet_file: Path, tmp_path: Path) -> None:
    local = train_fleet(fleet_file, tmp_path / "local")
    dask = train_fleet(fleet_file, tmp_path / "dask", "--engine", "dask", "--workers", "2")
    assert hashes(tmp_path / "dask", dask) == hashes(tmp_path / "local", local)
    # listed in the order of the names, though Dask trains the largest group first
    rows = [(m["model"], m["rows"]) for m in dask["models"]]  # type: ignore[attr-defined]
    assert rows == [("pump-a", 200), ("pump-b", 300), ("valve", 400)]


def test_group_values_become_model_names_or_are_refused() -> None:
    assert model_name_of("Pump A/2") == "pump-a-2"
    assert model_name_of(17) == "17"
    with pytest.raises(DataError, match="no usable model name"):
        model_name_of("///")
    frame = pd.DataFrame({"kind": ["Pump A", "pump-a"], "x": [1.0, 2.0]})
    with pytest.raises(DataError, match="both give model name 'pump-a'"):
        split_groups(frame, "kind")
    with pytest.raises(DataError, match="group column 'nope' not found"):
        split_groups(frame, "nope")


def write_fleet(path: Path, sizes: list[int]) -> Path:
    frames = []
    for seed, rows in enumerate(sizes):
        frame = generate_sensor_data(max(rows, 200), seed=seed).head(rows)
        frame["asset_kind"] = f"kind-{seed:02d}"
        frames.append(frame)
    pd.concat(frames).to_parquet(path, index=False)
    return path


def test_groups_trained_several_to_a_task_are_the_local_models(tmp_path: Path) -> None:
    # 12 groups on 2 workers: tasks of 2, 2, 1, ... groups (train_fleet._BUNDLE_PARTS)
    sizes = [200 + 50 * (i % 3) for i in range(12)]
    fleet = write_fleet(tmp_path / "many.parquet", sizes)
    local = train_fleet(fleet, tmp_path / "local")
    dask = train_fleet(fleet, tmp_path / "dask", "--engine", "dask", "--workers", "2")
    assert hashes(tmp_path / "dask", dask) == hashes(tmp_path / "local", local)
    rows = [(m["model"], m["rows"]) for m in dask["models"]]  # type: ignore[attr-defined]
    assert rows == [(f"kind-{i:02d}", n) for i, n in enumerate(sizes)]
    for model, _ in rows:
        assert resolve_alias(tmp_path / "dask", model, "candidate") is not None


def test_a_group_that_cannot_train_fails_both_engines_alike(tmp_path: Path) -> None:
    # kind-02 has too few rows; it is the smallest, so Dask trains it last, alone
    fleet = write_fleet(tmp_path / "bad.parquet", [200, 250, 30, 300])
    errors = {}
    for engine in ("local", "dask"):
        artifacts = tmp_path / engine
        args = ["train-fleet", "--data", str(fleet), "--group-column", "asset_kind"]
        args += ["--artifacts-dir", str(artifacts), "--engine", engine]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        errors[engine] = result.stderr.splitlines()[-1]
        assert not (artifacts / "models" / "kind-02").exists() or not list(
            (artifacts / "models" / "kind-02").glob("[!.]*")
        )
        for model in ("kind-00", "kind-01", "kind-03"):  # what was trained is whole
            if (artifacts / "models" / model / "ALIASES.json").exists():
                version = resolve_alias(artifacts, model, "candidate")
                assert read_manifest(model_dir(artifacts, model), version).model_sha256
    assert errors["local"] == errors["dask"]
    assert errors["local"].startswith("error: ")


def test_a_task_of_several_groups_publishes_each_before_the_next(tmp_path: Path) -> None:
    sizes = {"a": 150, "b": 30, "c": 150}
    groups = [
        FleetGroup(model=name, value=name, frame=generate_sensor_data(200, seed=seed).head(rows))
        for seed, (name, rows) in enumerate(sizes.items())
    ]
    with pytest.raises(DataError):
        train_groups(str(tmp_path), groups, TrainingRequest(), "fleet.parquet")
    assert resolve_alias(tmp_path, "a", "candidate") is not None  # published before b failed
    assert not (tmp_path / "models" / "c").exists()  # the task ended at b


def test_the_command_reads_and_splits_without_the_model_code(fleet_file: Path) -> None:
    # on Dask the command's process never trains: what it does before the cluster is up
    # (options, read, split) leaves scikit-learn to the workers' fork server
    script = f"""
import sys
from pathlib import Path
from anomaly_api.cli.common import user_errors
from anomaly_api.data.loading import read_table
from anomaly_api.training.fleet import split_groups
from anomaly_api.training.request import TrainingRequest, check_request
check_request(TrainingRequest(), has_data=True)
with user_errors():
    split_groups(read_table(Path({str(fleet_file)!r})), "asset_kind")
assert "sklearn" not in sys.modules, "sklearn imported"
"""
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_the_default_members_need_no_check() -> None:
    assert ensemble_config(TrainingRequest()) == EnsembleConfig()
