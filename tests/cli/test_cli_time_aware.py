"""``anomaly-api train --window``: time-aware models from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact, read_manifest
from anomaly_api.cli.main import app

runner = CliRunner()


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
    data = _streams_csv(tmp_path / "s.csv")
    frame = pd.read_csv(data)
    frame.loc[90, "ts"] = "2026-01-01 00:10:00"  # pump-1's clock steps back once
    frame.loc[101, "ts"] = frame.loc[100, "ts"]  # and repeats a timestamp
    frame.to_csv(data, index=False)
    code, out, err = invoke(
        "train", "--data", data, "--timestamp-column", "ts", "--stream-column", "id",
        "--window", "20", "--artifacts-dir", tmp_path / "art", "--version", "v", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "merged 1 repeated timestamp(s), skipped 1 reading(s)" in err
    report = json.loads(out)["metrics"]["input"]
    assert report["readings"] == 798
    assert report["merged_repeated_timestamps"] == 1
    assert report["skipped_clock_steps_back"] == 1


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
