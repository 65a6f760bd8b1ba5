"""A served time-aware model: its trade-off table, threshold moves and input drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_api.artifacts import latest_version, list_versions
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.service import metric_names
from api_testing import assert_error, make_settings, samples, serve_app

STREAM_START = 8000  # inside the held-out last 20% of the synthetic stream


@pytest.fixture
def series(ta_series: TimeSeriesDataset) -> TimeSeriesDataset:
    return ta_series


@pytest.fixture
def artifacts(ta_artifacts: Path) -> Path:
    return ta_artifacts


def _body(series: TimeSeriesDataset, start: int, stop: int, shift: float = 0.0) -> dict[str, Any]:
    values = series.data.X[start:stop].copy()
    values[:, 0] += shift
    return {"timestamps": series.timestamps[start:stop].tolist(), "readings": values.tolist()}


async def _flagged(client: httpx.AsyncClient, series: TimeSeriesDataset) -> tuple[int, str]:
    """Readings flagged among 1,500 of the held-out part, scored from their windows."""
    answer = await client.post(
        "/predict/window", json={**_body(series, STREAM_START, STREAM_START + 1500), "mode": "all"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["n_anomalies"], body["model_version"]


async def test_trade_off_table_of_the_window_detector(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        table = (await client.get("/model/thresholds")).json()
    assert table["available"] is True
    assert table["model_kind"] == "time-aware"
    assert set(table["thresholds"]) == set(table["tradeoff"]) == {"top4_z"}
    assert table["min_votes"] == 1
    assert table["labelled"] is True
    rows = table["tradeoff"]["top4_z"]
    assert [r["fpr"] for r in rows] == sorted(r["fpr"] for r in rows)
    assert {"precision", "recall"} <= set(rows[0])
    assert 0 < table["expected"]["expected_anomaly_rate"] < 0.5


async def test_info_and_thresholds_state_the_expected_false_alarm_rate(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        info = (await client.get("/model/info")).json()
        table = (await client.get("/model/thresholds")).json()
    stated = info["false_alarm_rate"]
    assert stated == table["false_alarm_rate"] == info["metrics"]["false_alarm_rate"]
    assert set(stated) == {"target", "expected", "upper_95", "n_calibration", "flagged", "method"}
    # labelled training: max F1 with the normal floor, never looser than the 1% bound
    assert stated["target"] == 0.01
    assert 0 < stated["expected"] < stated["upper_95"] < 0.05
    assert stated["n_calibration"] > 1_000
    assert "order-statistic bound" in stated["method"]


async def test_a_lower_fpr_target_flags_fewer_readings_of_the_same_stream(
    artifacts: Path, series: TimeSeriesDataset
) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        loose = await client.post(
            "/admin/thresholds", json={"target_fpr": 0.05, "new_version": "ta-loose"}
        )
        assert loose.status_code == 200, loose.text
        assert loose.json()["parent_version"] == "ta-1"
        n_loose, served = await _flagged(client, series)
        assert served == "ta-loose"
        strict = await client.post(
            "/admin/thresholds", json={"target_fpr": 0.002, "new_version": "ta-strict"}
        )
        assert strict.status_code == 200, strict.text
        body = strict.json()
        assert body["parent_version"] == "ta-loose"
        assert body["thresholds_after"]["top4_z"] < body["thresholds_before"]["top4_z"]
        n_strict, served = await _flagged(client, series)
        assert served == "ta-strict"
        table = (await client.get("/model/thresholds")).json()
        stream = await client.post("/streams/s1/readings", json=_body(series, 9000, 9004))
    assert n_strict < n_loose
    assert table["thresholds"] == body["thresholds_after"]
    assert table["tuning"]["objective"] == "target-fpr=0.002"
    assert stream.json()["model_version"] == "ta-strict"
    assert latest_version(artifacts) == "ta-strict"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"target_fpr": 1.5}, "must be in (0, 1)"),
        ({"target_fpr": 0}, "must be in (0, 1)"),
        ({"thresholds": {"zscore": -3.0}}, "unknown detector"),
        ({"contamination": 0.9}, "contamination must be in"),
        ({"target_fpr": 0.1, "new_version": "ta-1"}, "already exists"),
    ],
)
async def test_bad_requests_are_422_and_change_nothing(
    artifacts: Path, body: dict[str, object], fragment: str
) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        assert_error(
            await client.post("/admin/thresholds", json=body), 422, "invalid_input", fragment
        )
        info = (await client.get("/model/info")).json()
    assert info["version"] == "ta-1"
    assert [m.version for m in list_versions(artifacts)] == ["ta-1"]
    assert latest_version(artifacts) == "ta-1"


async def test_a_non_finite_threshold_is_422(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post(
            "/admin/thresholds",
            content='{"thresholds": {"top4_z": NaN}}',
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 422, answer.text
    assert [m.version for m in list_versions(artifacts)] == ["ta-1"]


async def test_drift_per_channel_counts_each_reading_once(
    ta_artifacts_dir: Path, series: TimeSeriesDataset
) -> None:
    channels = list(series.data.feature_names)
    settings = make_settings(ta_artifacts_dir, drift_min_rows=100)
    async with serve_app(settings) as client:
        empty = (await client.get("/monitoring/drift")).json()
        assert empty["available"] is True, empty
        assert empty["rows_held"] == 0
        # 320 readings in 20 calls of 16: the stream's history is not counted again.
        for start in range(STREAM_START, STREAM_START + 320, 16):
            answer = await client.post(
                "/streams/d1/readings", json=_body(series, start, start + 16, shift=50.0)
            )
            assert answer.status_code == 200, answer.text
        after_stream = (await client.get("/monitoring/drift")).json()
        # A window answered for its last reading adds that reading only.
        window = {**_body(series, STREAM_START, STREAM_START + 100), "mode": "last"}
        assert (await client.post("/predict/window", json=window)).status_code == 200
        after_window = (await client.get("/monitoring/drift")).json()
        scrape = samples((await client.get("/metrics")).text)
    assert after_stream["rows_held"] == 320
    assert after_window["rows_held"] == 321
    by_channel = {f["feature"]: f for f in after_stream["features"]}
    assert list(by_channel) == channels
    shifted = by_channel[channels[0]]
    assert shifted["drifted"] is True
    assert all(shifted["psi"] > by_channel[c]["psi"] for c in channels[1:])
    gauge = scrape[(metric_names.FEATURE_DRIFT_PSI, (("feature", channels[0]),))]
    assert gauge == pytest.approx(by_channel[channels[0]]["psi"], rel=0.05)
    assert scrape[(metric_names.DRIFT_WINDOW_ROWS, ())] == 321


async def test_a_manifest_threshold_off_its_model_refuses_the_version(artifacts: Path) -> None:
    path = artifacts / "ta-1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["detectors"][0]["threshold"] -= 1.0  # the model file itself is untouched
    path.write_text(json.dumps(manifest))
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.get("/model/thresholds")
        health = (await client.get("/health")).json()
    assert health["model_loaded"] is False
    assert_error(answer, 503, "model_not_ready", "do not match the model")
