"""``anomaly-api train --window``: time-aware models from the command line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact, read_manifest
from anomaly_api.cli.main import app

runner = CliRunner()
NAB_FLATLINE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "datasets"
    / "nab-corpus"
    / "data"
    / "artificialNoAnomaly"
    / "art_flatline.csv"
)
WARNING = "- warning: feature {!r} is constant in training: any change will be flagged"


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _streams_csv(path: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(0)
    frames = []
    for stream in ("pump-1", "pump-2"):
        load = np.cumsum(rng.normal(scale=0.1, size=n))
        frames.append(
            pd.DataFrame(
                {
                    "ts": pd.date_range("2026-01-01", periods=n, freq="1min").astype(str),
                    "id": stream,
                    "rpm": load + rng.normal(scale=0.3, size=n),
                    "flow": 0.8 * load + rng.normal(scale=0.3, size=n),
                    "temp": rng.normal(size=n),
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False)
    return path


def _train_edited_streams(
    tmp_path: Path, edit: Callable[[pd.DataFrame], None]
) -> tuple[str, str, pd.DataFrame]:
    """``train --window 20 --json`` on the two pumps' streams after ``edit`` changed them."""
    data = _streams_csv(tmp_path / "s.csv")
    frame = pd.read_csv(data)
    edit(frame)
    frame.to_csv(data, index=False)
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art", "--version", "v", "--json",
    )  # fmt: skip
    assert code == 0, err
    return out, err, frame


def test_trains_a_time_aware_model_on_streams(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art", "--version", "ta-cli",
    )  # fmt: skip
    assert code == 0, err
    assert "time-aware: window 20" in out
    assert "not evaluated" in out  # no labels: thresholds calibrated, not evaluated
    manifest = read_manifest(tmp_path / "art", "ta-cli")
    assert manifest.time_aware is not None
    assert manifest.time_aware.stream_column == "id"
    assert manifest.time_aware.median_interval_seconds == 60.0
    assert manifest.feature_names == ["rpm", "flow", "temp"]
    assert isinstance(load_any_artifact(tmp_path / "art"), TimeAwareArtifact)
    assert "false alarms on later normal data: expected" in out


def test_json_states_the_false_alarm_rate_it_calibrated(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--target-fpr", "0.05", "--artifacts-dir", tmp_path / "art",
        "--version", "ta-json", "--json",
    )  # fmt: skip
    assert code == 0, err
    stated = json.loads(out)["metrics"]["false_alarm_rate"]
    assert stated["target"] == 0.05
    # 2 streams x the last 80 of 400 minutes: 160 held-out readings with full windows
    assert stated["n_calibration"] == 160
    assert 0 < stated["expected"] < stated["upper_95"] <= 0.05
    assert stated["method"].startswith("order-statistic bound (95%) on 160 held-out")
    manifest = read_manifest(tmp_path / "art", "ta-json")
    assert manifest.metrics is not None
    assert manifest.metrics["false_alarm_rate"] == stated


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"row": 57, "value": "yesterday-ish"}, "error: row 57: timestamp 'yesterday-ish'"),
        (
            {"row": slice(80, 120), "value": "2026-01-01 00:10:00"},
            "error: row 80: timestamp '2026-01-01 00:10:00' of stream 'pump-1' is earlier",
        ),
    ],
)
def test_bad_timestamps_stop_training_with_one_error_line(
    tmp_path: Path, edit: dict[str, object], message: str
) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    frame = pd.read_csv(data)
    frame.loc[edit["row"], "ts"] = edit["value"]
    frame.to_csv(data, index=False)
    code, _, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art",
    )  # fmt: skip
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(message)
    assert "Traceback" not in err


def test_repeats_and_a_clock_stepping_back_are_merged_skipped_and_counted(
    tmp_path: Path,
) -> None:

    def edit(frame: pd.DataFrame) -> None:
        frame.loc[90, "ts"] = "2026-01-01 00:10:00"  # pump-1's clock steps back once
        frame.loc[101, "ts"] = frame.loc[100, "ts"]  # and repeats a timestamp

    out, err, _ = _train_edited_streams(tmp_path, edit)
    assert "merged 1 repeated timestamp(s), skipped 1 reading(s)" in err
    report = json.loads(out)["metrics"]["input"]
    assert report["readings"] == 798
    assert report["merged_repeated_timestamps"] == 1
    assert report["skipped_clock_steps_back"] == 1


def test_the_window_detector_is_chosen_on_the_command_line(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--window-detector", "top4_relations",
        "--artifacts-dir", tmp_path / "art", "--version", "rel",
    )  # fmt: skip
    assert code == 0, err
    assert "detector top4_relations" in out
    manifest = read_manifest(tmp_path / "art", "rel")
    assert manifest.time_aware is not None
    assert manifest.time_aware.detector == "top4_relations"
    artifact = load_any_artifact(tmp_path / "art", "rel")
    assert isinstance(artifact, TimeAwareArtifact)
    assert artifact.model.detector == "top4_relations"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--window", "20", "--window-detector", "top5_z"),
            "error: --window-detector must be one of max_z, top4_z, top4_relations, ensemble, "
            "ensemble_any, got 'top5_z'",
        ),
        (("--window-detector", "top4_relations"), "error: --window-detector needs --window"),
        (
            ("--window", "20", "--follow-memory", "-5"),
            "error: --follow-memory must be 0 (off) or a positive number of readings, got -5",
        ),
        (("--follow-memory", "500"), "error: --follow-memory needs --window"),
    ],
)
def test_a_window_detector_it_cannot_use_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _, err = invoke("train", *args, "--artifacts-dir", tmp_path / "art")
    assert code == 2
    assert err.strip() == message
    assert not (tmp_path / "art").exists() or not any((tmp_path / "art").iterdir())


def test_the_follow_memory_is_chosen_on_the_command_line_and_reported(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--follow-memory", "300", "--artifacts-dir", tmp_path / "art",
        "--version", "f", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["metrics"]["follow_memory"] == 300
    manifest = read_manifest(tmp_path / "art", "f")
    assert manifest.time_aware is not None
    assert manifest.time_aware.follow_memory == 300
    assert manifest.time_aware.window_feature_names[:6] == [
        "rpm:level", "rpm:flat", "rpm:shift", "rpm:residual", "rpm:residual_mean", "rpm:follow",
    ]  # fmt: skip
    artifact = load_any_artifact(tmp_path / "art", "f")
    assert isinstance(artifact, TimeAwareArtifact)
    assert artifact.model.follow_memory == 300
    assert artifact.model.kinds_[-1] == "follow"
    code, out, _ = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art", "--version", "off",
    )  # fmt: skip
    assert code == 0
    assert "follow memory off" in out
    assert "follow" not in read_manifest(tmp_path / "art", "off").time_aware.features  # type: ignore[union-attr]


def test_window_with_data_needs_the_timestamp_column(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    code, _, err = invoke("train", "--data", data, "--window", "20", "--artifacts-dir", tmp_path)
    assert code == 2
    assert "needs --timestamp-column" in err


def test_labels_missing_from_the_validation_part_are_a_clear_error(tmp_path: Path) -> None:
    data = _streams_csv(tmp_path / "s.csv")
    frame = pd.read_csv(data)
    frame["is_anomaly"] = 0
    frame.loc[10:20, "is_anomaly"] = 1  # only early in the time span
    frame.to_csv(data, index=False)
    code, _, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art",
    )  # fmt: skip
    assert code == 2
    assert "error: the validation part" in err
    assert "Traceback" not in err


def test_a_channel_constant_in_training_is_floored_named_and_quiet_until_it_moves(
    tmp_path: Path,
) -> None:

    def edit(frame: pd.DataFrame) -> None:
        frame["valve"] = 12.5

    out, err, frame = _train_edited_streams(tmp_path, edit)
    assert WARNING.format("valve") in err.splitlines()
    assert json.loads(out)["metrics"]["constant_features"] == ["valve"]
    artifact = load_any_artifact(tmp_path / "art")
    assert isinstance(artifact, TimeAwareArtifact)
    model = artifact.model
    assert model.scale_rule_.tolist() == ["iqr", "iqr", "iqr", "floor"]
    X = frame[frame["id"] == "pump-2"][["rpm", "flow", "temp", "valve"]].to_numpy()
    quiet = model.score_frame(X).is_anomaly
    X[300:305, 3] = 13.0
    moved = model.score_frame(X).is_anomaly
    assert moved[300:305].all()
    assert (moved[:300] == quiet[:300]).all()


@pytest.fixture
def nab_flatline(tmp_path: Path) -> Path:
    """NAB's ``art_flatline``, its first 15% (NAB's probationary period)."""
    if not NAB_FLATLINE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{NAB_FLATLINE} is missing; CI must provide ../shared/datasets")
        pytest.skip(f"{NAB_FLATLINE} is not available outside CI")
    frame = pd.read_csv(NAB_FLATLINE)
    path = tmp_path / "flatline.csv"
    frame.iloc[: int(0.15 * len(frame))].to_csv(path, index=False)
    return path


def test_nabs_flatline_trains_and_stays_quiet_while_flat(
    nab_flatline: Path, tmp_path: Path
) -> None:
    code, _, err = invoke(
        "train", "--data", nab_flatline, "--timestamp-column", "timestamp", "--window", "30",
        "--artifacts-dir", tmp_path / "art",
    )  # fmt: skip
    assert code == 0, err
    assert WARNING.format("value") in err.splitlines()
    artifact = load_any_artifact(tmp_path / "art")
    assert isinstance(artifact, TimeAwareArtifact)
    values = pd.read_csv(NAB_FLATLINE)[["value"]].to_numpy(copy=True)
    assert not artifact.model.score_frame(values).is_anomaly.any()  # the whole series
    values[2000:2003] += 0.5
    assert artifact.model.score_frame(values).is_anomaly[2000:2003].all()
