"""``anomaly-api train --detectors/--min-votes/--contamination``: the members in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import FORMAT_VERSION, load_artifact
from anomaly_api.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def sensor_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sensors.csv"
    result = runner.invoke(app, ["generate", "--out", str(path), "--rows", "1200", "--seed", "4"])
    assert result.exit_code == 0, result.stderr
    return path


def test_train_with_chosen_members_records_them_and_the_scaling(
    sensor_csv: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        [
            "train", "--data", str(sensor_csv), "--artifacts-dir", str(tmp_path),
            "--version", "m1", "--detectors", "zscore,pca", "--min-votes", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "members: zscore, pca (anomaly when >= 1 agree)" in result.stdout
    artifact = load_artifact(tmp_path, "m1")
    manifest = artifact.manifest
    assert manifest.format_version == FORMAT_VERSION == 3
    assert [d.name for d in manifest.detectors] == ["zscore", "pca"]
    assert manifest.detectors[1].n_components == artifact.model.pca_.n_components_
    assert manifest.min_votes == 1
    assert manifest.vote_rule == "anomaly when >= 1 of 2 detectors agree"
    assert manifest.scaling is not None
    assert list(manifest.scaling) == manifest.feature_names
    first = manifest.scaling[manifest.feature_names[0]]
    assert first.center == artifact.model.center_[0]
    assert first.scale == artifact.model.scale_[0]
    assert first.rule == "iqr"
    assert manifest.contributions is not None
    assert "PCA residual" in manifest.contributions


def test_default_members_are_the_seeds_three_with_two_votes(
    sensor_csv: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(sensor_csv), "--artifacts-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    manifest = load_artifact(tmp_path).manifest
    assert [d.name for d in manifest.detectors] == [
        "isolation_forest",
        "local_outlier_factor",
        "zscore",
    ]
    assert manifest.min_votes == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--detectors", "zscore,forest"], "unknown detectors ['forest']"),
        (["--detectors", "zscore,zscore"], "distinct"),
        (["--detectors", ","], "at least one"),
        (["--detectors", "zscore,pca", "--min-votes", "3"], "min_votes must be in [1, 2]"),
        (["--min-votes", "0"], "min_votes must be in [1, 3]"),
        (["--contamination", "0.5"], "--contamination must be between 0 and 0.5"),
    ],
)
def test_bad_member_flags_give_one_error_line_and_exit_2(
    sensor_csv: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(sensor_csv), "--artifacts-dir", str(tmp_path), *flags]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert not any(tmp_path.iterdir())  # nothing trained


def test_a_feature_constant_in_the_normal_rows_is_floored_and_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "flag"])
    frame["is_anomaly"] = 0
    frame.loc[:29, "is_anomaly"] = 1
    frame["flag"] = frame["is_anomaly"] * 5.0  # varies only where labelled anomalous
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(
        app, ["train", "--data", str(path), "--artifacts-dir", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.stderr
    assert (
        "- warning: feature 'flag' is constant in training: any change will be flagged"
        in result.stderr.splitlines()
    )
    manifest = load_artifact(tmp_path / "a").manifest
    assert manifest.scaling is not None
    assert manifest.scaling["flag"].rule == "floor"
    assert manifest.scaling["flag"].scale == 1e-6  # constant at 0: the floor itself
    assert manifest.metrics is not None
    assert manifest.metrics["constant_features"] == ["flag"]
