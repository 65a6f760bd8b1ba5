"""``anomaly-api score --timestamp-column``: a time-aware model's backtest of a file equals
appending the file's readings one by one to the service's streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomaly_api.bulk.backtest import REPLAY_COLUMNS, load_replayer, replay_input
from anomaly_api.data.synthetic import SENSOR_CHANNELS
from anomaly_api.data.timeseries import synthetic_timeseries
from api_testing import make_settings, serve_app
from bulk.conftest import run_score
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED

STREAM_READINGS = 150  # per stream: warm-up (59), a gap, and scored readings after it


def _two_streams() -> pd.DataFrame:
    """Two streams cut from the synthetic series (anomalies included), interleaved in
    file order, each with a gap of ten intervals in the middle (the window restarts)."""
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    parts = []
    for name, start in (("pump-a", 2000), ("pump-b", 2600)):
        rows = slice(start, start + STREAM_READINGS)
        frame = pd.DataFrame(series.data.X[rows], columns=list(SENSOR_CHANNELS))
        seconds = series.timestamps[rows].copy()
        seconds[STREAM_READINGS // 2 :] += 10 * (seconds[1] - seconds[0])
        frame.insert(0, "ts", seconds)
        frame.insert(1, "machine", name)
        frame["note"] = [f"{name}-{i}" for i in range(STREAM_READINGS)]
        parts.append(frame)
    mixed = pd.concat(parts, ignore_index=True)
    return mixed.sample(frac=1.0, random_state=3).reset_index(drop=True)  # any row order


@pytest.fixture(scope="module")
def readings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "readings.csv"
    _two_streams().to_csv(path, index=False)
    return path


async def test_replay_equals_appending_each_reading_through_the_api(
    ta_artifacts_dir: Path, readings_file: Path
) -> None:
    frame = pd.read_csv(readings_file)
    replayer = load_replayer(ta_artifacts_dir, None)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    assert list(source.streams) == list(dict.fromkeys(frame["machine"]))
    async with serve_app(make_settings(ta_artifacts_dir)) as http:
        for stream_id, rows in source.streams.items():
            replayed = replayer.replay(source.timestamps[rows], source.X[rows])
            answers = []
            for row in rows.tolist():
                response = await http.post(
                    f"/streams/{stream_id}/readings",
                    json={
                        "timestamps": [float(source.timestamps[row])],
                        "readings": [source.X[row].tolist()],
                        "top_k": 1,
                    },
                )
                assert response.status_code == 200, response.text
                answers.extend(response.json()["answers"])
            assert [a["is_anomaly"] for a in answers] == replayed["is_anomaly"].tolist()
            assert [a["warming_up"] for a in answers] == replayed["warming_up"].tolist()
            assert [a["alarm"] for a in answers] == replayed["alarm"].tolist()
            for name in ("anomaly_score", "severity", "confidence"):
                assert [a[name] for a in answers] == pytest.approx(
                    replayed[name].tolist(), rel=1e-12, abs=1e-12
                )
            names = [replayer.feature_names[i] for i in replayed["top"].tolist()]
            assert [a["contributions"][0]["feature"] for a in answers] == names
            assert [a["contributions"][0]["share"] for a in answers] == pytest.approx(
                replayed["top_share"].tolist(), rel=1e-12, abs=1e-12
            )
            assert sum(replayed["warming_up"]) == 2 * (replayer.model.window - 1)  # the gap
            assert replayed["is_anomaly"].any()


def test_the_answers_do_not_depend_on_the_block_size(
    ta_artifacts_dir: Path, readings_file: Path
) -> None:
    replayer = load_replayer(ta_artifacts_dir, None)
    frame = pd.read_csv(readings_file)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    rows = source.streams["pump-a"]
    whole = replayer.replay(source.timestamps[rows], source.X[rows])
    for block in (1, 7, 64):
        parts = replayer.replay(source.timestamps[rows], source.X[rows], block=block)
        for name, values in whole.items():
            np.testing.assert_allclose(parts[name], values, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_the_command_writes_every_row_in_file_order(
    ta_artifacts_dir: Path, readings_file: Path, tmp_path: Path, engine: str
) -> None:
    out = tmp_path / "scored.parquet"
    options = ["--artifacts-dir", str(ta_artifacts_dir), "--no-progress", "--engine", engine]
    if engine == "dask":
        options += ["--workers", "2"]
    done = run_score(
        readings_file, out, *options, "--timestamp-column", "ts", "--stream-column", "machine"
    )
    assert done.returncode == 0, done.stderr
    assert "scored 300 rows" in done.stdout
    scored = pd.read_parquet(out)
    frame = pd.read_csv(readings_file)
    assert list(scored.columns) == [*frame.columns, *REPLAY_COLUMNS]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    replayer = load_replayer(ta_artifacts_dir, None)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    for rows in source.streams.values():
        replayed = replayer.replay(source.timestamps[rows], source.X[rows])
        got = scored.iloc[rows]
        assert got["is_anomaly"].tolist() == replayed["is_anomaly"].tolist()
        assert got["alarm"].tolist() == replayed["alarm"].tolist()
        np.testing.assert_allclose(got["anomaly_score"], replayed["anomaly_score"], rtol=1e-12)
        assert set(got["top_feature"]) <= set(SENSOR_CHANNELS)


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        ("none", ["--stream-column", "machine"], "needs --timestamp-column"),
        ("none", ["--timestamp-column", "when"], "timestamp column 'when' not found"),
        ("none", ["--timestamp-column", "ts", "--stream-column", "site"], "'site' not found"),
        ("duplicate", ["--timestamp-column", "ts", "--stream-column", "machine"], "duplicates"),
        ("bad_time", ["--timestamp-column", "ts"], "cannot be parsed"),
        ("none", [], "is time-aware: give --timestamp-column"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_output(
    ta_artifacts_dir: Path,
    readings_file: Path,
    tmp_path: Path,
    change: str,
    options: list[str],
    message: str,
) -> None:
    frame = pd.read_csv(readings_file)
    if change == "duplicate":
        frame.loc[5, ["ts", "machine"]] = frame.loc[9, ["ts", "machine"]].to_numpy()
    if change == "bad_time":
        frame["ts"] = frame["ts"].astype(str)
        frame.loc[3, "ts"] = "yesterday"
    data = tmp_path / "in.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out.parquet"
    done = run_score(data, out, "--artifacts-dir", str(ta_artifacts_dir), "--no-progress", *options)
    assert done.returncode == 2, done.stdout  # a usage error the user can fix
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.parquet*"))


def test_a_point_wise_model_needs_no_replay(
    tiny_artifacts_dir: Path, readings_file: Path, tmp_path: Path
) -> None:
    done = run_score(
        readings_file,
        tmp_path / "out.parquet",
        "--artifacts-dir",
        str(tiny_artifacts_dir),
        "--no-progress",
        "--timestamp-column",
        "ts",
    )
    assert done.returncode == 2
    assert "is point-wise" in done.stderr
