"""A real server on a time-aware model: the operator retunes it with `anomaly-api tune`, the
server picks the revision up on SIGHUP, drift and the expected rate follow it, and the
stream keeps its window."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.service import metric_names
from anomaly_api.testing import clean_env, running_server
from api_testing import samples
from factories import TIME_AWARE_ROWS, TIME_AWARE_SEED

START = 8000  # inside the held-out last 20% of the synthetic stream


def test_tune_then_sighup_serves_the_revision(tmp_path: Path, ta_artifacts_dir: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(ta_artifacts_dir, artifacts)
    series = synthetic_timeseries(seed=TIME_AWARE_SEED, n_rows=TIME_AWARE_ROWS)
    channels = list(series.data.feature_names)

    def readings(start: int) -> dict[str, Any]:
        rows = slice(start, start + 16)
        return {
            "timestamps": series.timestamps[rows].tolist(),
            "readings": series.data.X[rows].tolist(),
        }

    env = {"ANOMALY_ARTIFACTS_DIR": str(artifacts), "ANOMALY_DRIFT_MIN_ROWS": "10"}
    with (
        running_server(tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for i in range(4):
            first = client.post("/streams/p1/readings", json=readings(START + 16 * i))
            assert first.status_code == 200, first.text
        assert first.json()["model_version"] == "ta-1"
        assert client.get("/monitoring/drift").json()["rows_held"] == 64

        tuned = subprocess.run(
            [sys.executable, "-m", "anomaly_api.cli.main", "tune", "--target-fpr", "0.002"],
            env=clean_env(env),
            capture_output=True,
            text=True,
            check=False,
        )
        assert tuned.returncode == 0, tuned.stderr
        record = json.loads(tuned.stdout)
        assert client.get("/model/info").json()["version"] == "ta-1"  # until told
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while client.get("/model/info").json()["version"] != record["version"]:
            assert time.monotonic() < deadline, "SIGHUP did not load the revision"
            time.sleep(0.1)

        table = client.get("/model/thresholds").json()
        after = client.post("/streams/p1/readings", json=readings(START + 64))
        drift = client.get("/monitoring/drift").json()
        scrape = samples(client.get("/metrics").text)
    assert table["model_kind"] == "time-aware"
    assert table["thresholds"] == record["thresholds_after"]
    assert table["parent_version"] == "ta-1"
    assert after.status_code == 200, after.text
    assert after.json()["model_version"] == record["version"]
    # A revision serves the same fit: the stream keeps its window (it used to restart).
    assert after.json()["stream"]["restarted"] is False
    assert after.json()["stream"]["warming_up"] is False
    assert after.json()["stream"]["total"] == 80
    assert drift["model_version"] == record["version"]
    assert drift["rows_held"] == 80  # the same fit: its drift window went on (64 + 16)
    assert [f["feature"] for f in drift["features"]] == channels
    expected = scrape[(metric_names.MODEL_EXPECTED_ANOMALY_RATE, ())]
    assert expected == pytest.approx(record["expected"]["expected_anomaly_rate"])
    for channel in channels:
        assert (metric_names.FEATURE_DRIFT_PSI, (("feature", channel),)) in scrape
