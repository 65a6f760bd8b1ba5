"""``anomaly-api score --timestamp-column``: a time-aware model's backtest of a file equals
appending the file's readings one by one to the service's streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from anomaly_api.bulk.backtest import REPLAY_COLUMNS, load_replayer, replay_input
from anomaly_api.data.synthetic import SENSOR_CHANNELS
from anomaly_api.data.timeseries import synthetic_timeseries
from api_testing import make_settings, serve_app, stream_backend
from bulk.conftest import run_score
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED

STREAM_READINGS = 200  # per stream: warm-up (59), a gap at 100, warm-up, a stuck sensor


def _two_streams() -> pd.DataFrame:
    """Two streams cut from the synthetic series (anomalies included), interleaved in
    file order, each with a gap of ten intervals in the middle (the window restarts) and a
    stuck sensor near its end."""
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    parts = []
    for name, start in (("pump-a", 2000), ("pump-b", 2600)):
        rows = slice(start, start + STREAM_READINGS)
        frame = pd.DataFrame(series.data.X[rows], columns=list(SENSOR_CHANNELS))
        seconds = series.timestamps[rows].copy()
        seconds[STREAM_READINGS // 2 :] += 10 * (seconds[1] - seconds[0])
        frame.iloc[170:190, 1] = frame.iloc[170, 1]  # a stuck sensor: an event
        frame.insert(0, "ts", seconds)
        frame.insert(1, "machine", name)
        frame["note"] = [f"{name}-{i}" for i in range(STREAM_READINGS)]
        parts.append(frame)
    for i, part in enumerate(parts):  # interleaved in file order, each stream in time order
        part.index = np.arange(i, len(parts) * len(part), len(parts))
    return pd.concat(parts).sort_index().reset_index(drop=True)


def _without_ids(event: dict[str, Any]) -> dict[str, Any]:
    """An event as listed, without what names the stream's life (its id) or what the
    service adds (feedback)."""
    skip = {"id", "feedback", "feedback_history"}
    return {k: v for k, v in event.items() if k not in skip}


@pytest.fixture(scope="module")
def readings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "readings.csv"
    _two_streams().to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("artifacts", "backend"),
    [
        ("ta_artifacts_dir", "memory"),
        ("ta_follow_artifacts_dir", "memory"),
        ("ta_follow_artifacts_dir", "redis"),
    ],
)
async def test_replay_equals_appending_each_reading_through_the_api(
    artifacts: str, backend: str, readings_file: Path, request: pytest.FixtureRequest
) -> None:
    """Also for a model that follows the stream's level and spread, on either store."""
    ta_artifacts_dir = request.getfixturevalue(artifacts)
    frame = pd.read_csv(readings_file)
    replayer = load_replayer(ta_artifacts_dir, None)
    assert replayer.adaptation is not None  # on by default, as in the service
    unadapted = load_replayer(ta_artifacts_dir, None, adapt_streams=False)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    assert list(source.streams) == list(dict.fromkeys(frame["machine"]))
    with stream_backend(backend, "backtest") as store:
        async with serve_app(make_settings(ta_artifacts_dir, **store)) as http:
            adapted = await _replayed_as_served(http, replayer, unadapted, source)
    assert adapted or artifacts != "ta_artifacts_dir"  # the adaptive threshold took part


async def _replayed_as_served(http: Any, replayer: Any, unadapted: Any, source: Any) -> bool:
    """Each stream of ``source`` appended reading by reading answers as it replays;
    whether the adaptive threshold moved a score."""
    adapted = False
    for stream_id, stream in source.streams.items():
        assert (stream.reading == np.arange(len(stream.rows))).all()  # nothing to tidy
        replayed = replayer.replay(stream.timestamps, stream.X)
        plain = unadapted.replay(stream.timestamps, stream.X)
        adapted |= bool((replayed["anomaly_score"] != plain["anomaly_score"]).any())
        answers = []
        for row in range(len(stream.X)):
            response = await http.post(
                f"/streams/{stream_id}/readings",
                json={
                    "timestamps": [float(stream.timestamps[row])],
                    "readings": [stream.X[row].tolist()],
                    "top_k": 3,
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
        listed = (await http.get(f"/streams/{stream_id}/events?limit=100")).json()["events"]
        both = replayer.replay_stream(stream_id, stream.timestamps, stream.X)
        assert both.events, "the synthetic anomalies raise at least one event"
        assert [_without_ids(e) for e in both.events] == [_without_ids(e) for e in reversed(listed)]
        # the same readings in the same events (ids differ: a stream life's epoch)
        ours = both.answers["event_id"].tolist()
        same = dict(zip(ours, [a["event_id"] for a in answers], strict=True))
        assert [same.get(i) for i in ours] == [a["event_id"] for a in answers]
        assert len(set(same.values())) == len(same)
    return adapted


@pytest.mark.parametrize("artifacts", ["ta_artifacts_dir", "ta_follow_artifacts_dir"])
def test_the_answers_do_not_depend_on_the_block_size(
    artifacts: str, readings_file: Path, request: pytest.FixtureRequest
) -> None:
    """Nor on the followed state's blocks: each block starts from the block before's."""
    replayer = load_replayer(request.getfixturevalue(artifacts), None)
    assert (replayer.model.follow_memory > 0) == (artifacts == "ta_follow_artifacts_dir")
    frame = pd.read_csv(readings_file)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    stream = source.streams["pump-a"]
    whole = replayer.replay(stream.timestamps, stream.X)
    for block in (1, 7, 64):
        parts = replayer.replay(stream.timestamps, stream.X, block=block)
        assert parts.pop("why").tolist() == whole["why"].tolist()
        kept = [d is not None for d in whole["deviations"]]
        assert [d is not None for d in parts["deviations"]] == kept
        np.testing.assert_allclose(
            np.stack(list(parts.pop("deviations")[kept])),
            np.stack(list(whole["deviations"][kept])),
            rtol=1e-12,
            atol=1e-12,
        )
        for name, values in whole.items():
            if name not in ("why", "deviations"):
                np.testing.assert_allclose(
                    parts[name], values, rtol=1e-12, atol=1e-12, err_msg=name
                )


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_the_command_writes_every_row_in_file_order(
    ta_artifacts_dir: Path, readings_file: Path, tmp_path: Path, engine: str
) -> None:
    out = tmp_path / "scored.parquet"
    options = ["--artifacts-dir", str(ta_artifacts_dir), "--no-progress", "--engine", engine]
    if engine == "dask":
        options += ["--workers", "2"]
    events = tmp_path / "events.jsonl"
    done = run_score(
        readings_file,
        out,
        *options,
        "--timestamp-column",
        "ts",
        "--stream-column",
        "machine",
        "--events",
        str(events),
    )
    assert done.returncode == 0, done.stderr
    assert f"scored {2 * STREAM_READINGS} rows" in done.stdout
    scored = pd.read_parquet(out)
    frame = pd.read_csv(readings_file)
    assert list(scored.columns) == [*frame.columns, *REPLAY_COLUMNS]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    replayer = load_replayer(ta_artifacts_dir, None)
    source = replay_input(
        frame, replayer.feature_names, timestamp_column="ts", stream_column="machine"
    )
    for stream in source.streams.values():
        replayed = replayer.replay(stream.timestamps, stream.X)
        got = scored.iloc[stream.rows]
        assert got["is_anomaly"].tolist() == replayed["is_anomaly"].tolist()
        assert got["alarm"].tolist() == replayed["alarm"].tolist()
        np.testing.assert_allclose(got["anomaly_score"], replayed["anomaly_score"], rtol=1e-12)
        assert set(got["top_feature"]) <= set(SENSOR_CHANNELS)
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert written
    assert {e["stream"] for e in written} <= {"pump-a", "pump-b"}
    assert {e["id"] for e in written} == set(scored["event_id"].dropna())


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        ("none", ["--stream-column", "machine"], "needs --timestamp-column"),
        ("none", ["--timestamp-column", "when"], "timestamp column 'when' not found"),
        ("none", ["--timestamp-column", "ts", "--stream-column", "site"], "'site' not found"),
        ("unsorted", ["--timestamp-column", "ts", "--stream-column", "machine"], "sort the file"),
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
    if change == "unsorted":
        frame = frame.iloc[::-1].reset_index(drop=True)
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


def test_readings_as_they_come_repeats_merged_and_a_clock_stepping_back_skipped(
    ta_artifacts_dir: Path, readings_file: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(readings_file)
    frame = frame[frame["machine"] == "pump-a"].drop(columns="machine").reset_index(drop=True)
    tidy = frame.copy()
    repeat = frame.iloc[[80]].assign(pressure=frame.loc[80, "pressure"] + 2.0)
    back = frame.iloc[[150]].assign(ts=frame.loc[150, "ts"] - 3600.0)  # an hour back
    messy = pd.concat([frame.iloc[:81], repeat, frame.iloc[81:151], back, frame.iloc[151:]])
    messy = messy.reset_index(drop=True)
    replayer = load_replayer(ta_artifacts_dir, None)
    source = replay_input(messy, replayer.feature_names, timestamp_column="ts", stream_column=None)
    assert source.policy.tolist().count("merged") == 2
    assert source.policy[152] == "skipped"
    stream = source.streams[""]
    tidy.loc[80, "pressure"] += 1.0  # the mean of the two readings at that time
    expected = replay_input(tidy, replayer.feature_names, timestamp_column="ts", stream_column=None)
    np.testing.assert_array_equal(stream.timestamps, expected.streams[""].timestamps)
    np.testing.assert_allclose(stream.X, expected.streams[""].X, rtol=1e-15)
    data, out = tmp_path / "messy.csv", tmp_path / "out.parquet"
    messy.to_csv(data, index=False)
    done = run_score(
        data,
        out,
        "--artifacts-dir",
        str(ta_artifacts_dir),
        "--no-progress",
        "--timestamp-column",
        "ts",
    )
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(out)
    assert len(scored) == len(messy)
    assert scored["input_policy"].tolist().count("merged") == 2
    assert scored.loc[80, "anomaly_score"] == scored.loc[81, "anomaly_score"]
    assert np.isnan(scored.loc[152, "anomaly_score"])
    assert pd.isna(scored.loc[152, "top_feature"])
    assert not scored.loc[152, "is_anomaly"]
