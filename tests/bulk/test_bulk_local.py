"""``anomaly-api score`` in this process: output, equality with the service path, bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomaly_api.artifacts import load_artifact
from anomaly_api.bulk import runner
from anomaly_api.bulk.engines import LocalEngine
from anomaly_api.client import answer_columns
from anomaly_api.data.loading import Dataset
from anomaly_api.service.scorer import build_scorer
from anomaly_api.training.pipeline import train_and_save
from bulk.conftest import FEATURES, readings
from e2e.e2e_service import cli_path

DETECTORS = ["isolation_forest", "local_outlier_factor", "zscore"]


def score_cli(*args: str | Path, artifacts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli_path(), "score", "--artifacts-dir", str(artifacts), "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def reference(artifacts: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """What the service's predictor computes for these rows (fast path + combine)."""
    artifact = load_artifact(artifacts, None)
    X = np.ascontiguousarray(frame[FEATURES].to_numpy(dtype=np.float64))
    out = artifact.model.combine(build_scorer(artifact.model, "fast").detector_scores(X))
    answers = {
        "is_anomaly": out.is_anomaly,
        "anomaly_score": out.anomaly_score,
        "confidence": out.confidence,
    }
    for i, name in enumerate(DETECTORS):
        answers[f"{name}_score"] = out.scores[:, i]
    return pd.DataFrame(answers)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_scores_a_file_keeping_every_column(
    artifacts: Path, tmp_path: Path, suffix: str
) -> None:
    frame = readings(5_000)
    data = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_parquet(data, index=False)
    out = tmp_path / "out.parquet"
    done = score_cli("--data", data, "--out", out, "--chunk-rows", "1234", artifacts=artifacts)
    assert done.returncode == 0, done.stderr
    assert "scored 5,000 rows with model tiny-1" in done.stdout
    scored = pd.read_parquet(out)
    inputs = [c if c != "is_anomaly" else "is_anomaly_input" for c in frame.columns]
    assert list(scored.columns) == [*inputs, *answer_columns(DETECTORS)]
    assert scored["reading_id"].tolist() == list(range(5_000))
    assert scored["site"].tolist() == frame["site"].tolist()
    assert scored["is_anomaly_input"].tolist() == frame["is_anomaly"].tolist()
    expected = reference(artifacts, frame)
    pd.testing.assert_frame_equal(scored[list(expected.columns)], expected, check_exact=True)
    anomalies = int(expected["is_anomaly"].sum())
    assert 0 < anomalies < 5_000
    assert f"{anomalies:,} anomalies" in done.stdout
    assert not list(tmp_path.glob(".*partial"))


def test_threads_and_chunk_sizes_do_not_change_the_answers(artifacts: Path, tmp_path: Path) -> None:
    frame = readings(9_000, seed=4)
    data = tmp_path / "in.parquet"
    frame.to_parquet(data, index=False)
    outputs = []
    for threads, chunk_rows in [(1, 9_000), (3, 4_500), (2, 777)]:
        out = tmp_path / f"out-{threads}.parquet"
        engine = LocalEngine(artifacts, None, threads=threads)
        try:
            summary = runner.run(data, out, engine, chunk_rows=chunk_rows)
        finally:
            engine.close()
        assert summary.rows == 9_000
        outputs.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(outputs[0], outputs[1], check_exact=True)
    pd.testing.assert_frame_equal(outputs[0], outputs[2], check_exact=True)


def bad_csv(tmp_path: Path, edit: str) -> Path:
    frame = readings(3_000).astype({"f3": object})
    if edit == "text":
        frame.loc[2_344, "f3"] = "oops"
    elif edit == "nan":
        frame.loc[2_344, "f3"] = np.nan
    elif edit == "inf":
        frame.loc[2_344, "f3"] = np.inf
    elif edit == "huge":
        frame.loc[2_344, "f3"] = 1e200
    elif edit == "missing":
        frame = frame.drop(columns=["f3"])
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("text", "error: column 'f3', row 2345: 'oops' is not a number"),
        ("nan", "error: column 'f3', row 2345: missing value (NaN or empty)"),
        ("inf", "error: column 'f3', row 2345: infinite value (inf)"),
        ("huge", "error: column 'f3', row 2345: value 1e+200 beyond ±1e+150"),
        ("missing", "error: "),
    ],
)
def test_bad_files_stop_with_one_error_line_and_no_output(
    artifacts: Path, tmp_path: Path, edit: str, message: str
) -> None:
    data = bad_csv(tmp_path, edit)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous output")  # an older result must survive a failed run
    done = score_cli("--data", data, "--out", out, "--chunk-rows", "1000", artifacts=artifacts)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(message)
    if edit == "missing":
        assert "feature column 'f3' not found" in lines[0]
    assert out.read_bytes() == b"previous output"
    assert not list(tmp_path.glob(".*partial"))


def test_text_in_a_parquet_feature_column_names_the_row(artifacts: Path, tmp_path: Path) -> None:
    frame = readings(100).astype({"f6": object})
    frame.loc[41, "f6"] = "n/a"
    data = tmp_path / "bad.parquet"
    frame.astype({"f6": str}).to_parquet(data, index=False)
    done = score_cli("--data", data, "--out", tmp_path / "o.parquet", artifacts=artifacts)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: column 'f6', row 42: 'n/a' is not a number"
    assert not (tmp_path / "o.parquet").exists()


def test_unknown_version_and_missing_file_are_one_line_errors(
    artifacts: Path, tmp_path: Path
) -> None:
    data = tmp_path / "in.csv"
    readings(60).to_csv(data, index=False)
    unknown = score_cli(
        "--data", data, "--out", tmp_path / "o.parquet", "--version", "nope", artifacts=artifacts
    )
    missing = score_cli(
        "--data", tmp_path / "none.csv", "--out", tmp_path / "o.parquet", artifacts=artifacts
    )
    csv_out = score_cli("--data", data, "--out", tmp_path / "o.csv", artifacts=artifacts)
    for done in (unknown, missing, csv_out):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("error: ")
    assert "nope" in unknown.stderr
    assert "no such file" in missing.stderr
    assert ".parquet" in csv_out.stderr


def test_score_is_listed_in_the_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_api.cli.main", "score", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for option in ("--data", "--out", "--version", "--engine", "--address", "--via"):
        assert option in done.stdout


def test_a_reading_overflowing_a_floored_spread_is_one_error_line(tmp_path: Path) -> None:
    frame = readings(400)
    frame["f3"] = 0.0  # constant in training: spread floored at 1e-6
    X = frame[FEATURES].to_numpy(dtype=np.float64)
    dataset = Dataset(X=X, feature_names=FEATURES, y=None, kinds=None, source="t")
    train_and_save(dataset, tmp_path / "art")
    frame.loc[7, "f3"] = 1e149  # accepted (below 1e150), but 1e155 spreads: distances overflow
    data = tmp_path / "huge.csv"
    frame.to_csv(data, index=False)
    done = score_cli("--data", data, "--out", tmp_path / "o.parquet", artifacts=tmp_path / "art")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: feature values are too extreme to be scored"
    ]
