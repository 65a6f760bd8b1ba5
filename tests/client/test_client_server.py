"""Both clients against a real ``anomaly-api serve`` process over the tiny model."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from anomaly_api.client import (
    AnomalyApiError,
    AnomalyClient,
    AsyncAnomalyClient,
    RetryPolicy,
    _parse,
    answer_columns,
)
from anomaly_api.testing import ServerProcess
from client.conftest import API_KEY

FEATURES = [f"f{i}" for i in range(8)]


def rows(n: int, seed: int = 0) -> list[list[float]]:
    data = np.random.default_rng(seed).normal(size=(n, 8))
    data[::50] *= 9.0  # some clear anomalies
    return data.tolist()


def test_health_and_model_info(server_url: str) -> None:
    with AnomalyClient(server_url) as client:
        health = client.health()
        info = client.model_info()
    assert health.status == "ok"
    assert health.model_loaded
    assert health.model_version == "tiny-1"
    assert info.version == "tiny-1"
    assert info.feature_names == tuple(FEATURES)
    assert info.detector_names == ("isolation_forest", "local_outlier_factor", "zscore")


def test_predict_many_matches_one_batch_in_order(server_url: str) -> None:
    data = rows(2_345)
    with AnomalyClient(server_url, max_batch_rows=400, max_concurrency=3) as client:
        many = client.predict_many(data)
        single = [client.predict(row) for row in data[:5]]
        batch = client.predict_batch(data[:400])
    assert len(many) == 2_345
    assert [p.anomaly_score for p in many[:400]] == [p.anomaly_score for p in batch]
    assert [p.anomaly_score for p in many[:5]] == [p.anomaly_score for p in single]
    assert 0 < sum(p.is_anomaly for p in many) < 2_345
    assert all(p.model_version == "tiny-1" for p in many)


def test_predictions_carry_severity_and_contributions(server_url: str) -> None:
    data = rows(60, seed=4)
    with AnomalyClient(server_url) as client:
        one = client.predict(data[0])
        top = client.predict(data[0], top_k=2)
        batch = client.predict_batch(data)
        batch_top = client.predict_batch(data, top_k=1)
    assert one.severity == one.raw["severity"]
    assert [c.feature for c in one.contributions] == [
        c["feature"] for c in one.raw["contributions"]
    ]
    assert sorted(c.feature for c in one.contributions) == FEATURES
    assert top.contributions == one.contributions[:2]
    assert any(p.severity > 0 for p in batch)
    assert all(p.severity == 0 for p in batch if not p.is_anomaly)
    for full, first in zip(batch, batch_top, strict=True):
        shares = [c.share for c in full.contributions]
        assert shares == sorted(shares, reverse=True)
        assert abs(sum(shares) - 1.0) < 1e-9
        assert first.contributions == full.contributions[:1]


def test_batch_results_equal_the_servers_json_answer(server_url: str) -> None:
    """Whichever form the server answers the client's ``Accept`` with, the results are
    those of its JSON answer (asked for with ``Accept: application/json``)."""
    data = rows(300, seed=6)
    for top_k in (None, 3):
        body: dict[str, object] = {"observations": [{"features": r} for r in data]}
        if top_k is not None:
            body["top_k"] = top_k
        plain = httpx.post(f"{server_url}/predict/batch", json=body, timeout=30)
        assert plain.headers["content-type"].startswith("application/json")
        expected = plain.json()["predictions"]
        with AnomalyClient(server_url) as client:
            got = client.predict_batch(data, top_k=top_k)
        per_call = {"observation_id": "", "inference_ms": 0.0, "cached": False}  # may differ
        for prediction, item in zip(got, expected, strict=True):
            assert {**prediction.raw, **per_call} == {**item, **per_call}
            assert prediction.severity == item["severity"]
            assert [c.share for c in prediction.contributions] == [
                c["share"] for c in item["contributions"]
            ]


def test_the_server_answers_the_clients_accept_with_tensors(server_url: str) -> None:
    data = rows(200, seed=8)
    body = {
        "observations": [{"features": r, "observation_id": f"o-{i}"} for i, r in enumerate(data)]
    }
    asked = httpx.post(
        f"{server_url}/predict/batch",
        json=body,
        headers={"Accept": _parse.BATCH_ACCEPT},
        timeout=30,
    )
    plain = httpx.post(f"{server_url}/predict/batch", json=body, timeout=30)
    assert asked.headers["content-type"] == _parse.TENSORS
    assert plain.headers["content-type"] == "application/json"
    for top_k in (None, 1, 8):
        from_tensors = _parse.read_batch(asked, top_k)
        per_call = {"inference_ms": 0.0, "cached": False}
        expected = [
            {**item, **per_call, "contributions": item["contributions"][:top_k]}
            for item in plain.json()["predictions"]
        ]
        assert [{**p.raw, **per_call} for p in from_tensors] == expected
        assert [p.observation_id for p in from_tensors] == [f"o-{i}" for i in range(200)]
        assert [p.anomaly_score for p in from_tensors] == [e["anomaly_score"] for e in expected]


def test_features_by_name_give_the_same_answer(server_url: str) -> None:
    row = rows(1)[0]
    with AnomalyClient(server_url) as client:
        by_position = client.predict(row)
        by_name = client.predict(dict(zip(reversed(FEATURES), reversed(row), strict=True)))
    assert by_name.anomaly_score == by_position.anomaly_score


def test_server_errors_carry_code_message_and_request_id(server_url: str) -> None:
    with AnomalyClient(server_url) as client, pytest.raises(AnomalyApiError) as caught:
        client.predict([1.0, 2.0])
    error = caught.value
    assert error.status_code == 422
    assert error.code == "invalid_features"
    assert "expected 8 features" in error.message
    assert error.request_id


def test_score_frame_adds_the_answer_columns(server_url: str) -> None:
    data = rows(1_500, seed=3)
    frame = pd.DataFrame(data, columns=FEATURES)
    frame.insert(0, "sensor", [f"s{i % 4}" for i in range(len(frame))])
    frame = frame[["sensor", *reversed(FEATURES)]]  # columns in any order
    with AnomalyClient(server_url, max_batch_rows=1000) as client:
        scored = client.score_frame(frame)
        expected = client.predict_many(data)
    detectors = ["isolation_forest", "local_outlier_factor", "zscore"]
    assert list(scored.columns) == [
        *frame.columns,
        *answer_columns(detectors),
        "severity",
        "top_feature",
        "top_share",
    ]
    assert scored["anomaly_score"].tolist() == [p.anomaly_score for p in expected]
    assert scored["severity"].tolist() == [p.severity for p in expected]
    assert scored["top_feature"].tolist() == [p.contributions[0].feature for p in expected]
    assert scored["top_share"].tolist() == [p.contributions[0].share for p in expected]
    assert set(scored["top_feature"]) <= set(FEATURES)
    assert scored["is_anomaly"].dtype == bool
    assert scored["sensor"].tolist() == frame["sensor"].tolist()


def test_score_frame_names_a_missing_column(server_url: str) -> None:
    frame = pd.DataFrame(rows(3), columns=FEATURES).drop(columns=["f5"])
    with AnomalyClient(server_url) as client, pytest.raises(KeyError, match="'f5'"):
        client.score_frame(frame)


async def test_async_client_against_the_server(server_url: str) -> None:
    data = rows(1_234, seed=5)
    async with AsyncAnomalyClient(server_url, max_batch_rows=300, max_concurrency=2) as client:
        info = await client.model_info()
        many = await client.predict_many(data)
        health = await client.health()
        scored = await client.score_frame(pd.DataFrame(data[:50], columns=FEATURES))
    with AnomalyClient(server_url) as client:
        reference = client.predict_many(data)
        scored_sync = client.score_frame(pd.DataFrame(data[:50], columns=FEATURES))
    assert info.version == "tiny-1"
    assert health.status == "ok"
    assert [p.anomaly_score for p in many] == [p.anomaly_score for p in reference]
    assert [p.severity for p in many] == [p.severity for p in reference]
    assert [p.contributions for p in many] == [p.contributions for p in reference]
    pd.testing.assert_frame_equal(scored, scored_sync)
    assert scored["top_feature"].tolist() == [p.contributions[0].feature for p in many[:50]]


def test_api_key(keyed_server_url: str) -> None:
    with AnomalyClient(keyed_server_url, api_key=API_KEY) as client:
        assert client.predict(rows(1)[0]).model_version == "tiny-1"
    with AnomalyClient(keyed_server_url) as client, pytest.raises(AnomalyApiError) as missing:
        client.predict(rows(1)[0])
    with (
        AnomalyClient(keyed_server_url, api_key="wrong") as client,
        pytest.raises(AnomalyApiError) as wrong,
    ):
        client.predict(rows(1)[0])
    assert (missing.value.status_code, missing.value.code) == (401, "missing_api_key")
    assert (wrong.value.status_code, wrong.value.code) == (403, "invalid_api_key")


def test_connection_errors_are_retried_until_the_server_is_up(
    artifacts_copy: Path, tmp_path: Path
) -> None:
    """The client starts before the server: refused connections are retried with backoff."""
    outcome: dict[str, object] = {}
    retry = RetryPolicy(max_attempts=200, base_delay_s=0.05, max_delay_s=0.5)
    # The process takes seconds to bind its port: the client's first calls are refused.
    server = ServerProcess(tmp_path, {"ANOMALY_ARTIFACTS_DIR": str(artifacts_copy)})

    def call() -> None:
        with AnomalyClient(server.url, retry=retry) as client:
            try:
                outcome["prediction"] = client.predict(rows(1)[0])
            except Exception as exc:  # reported below
                outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    try:
        caller.join(timeout=90)
    finally:
        server.stop()
    assert not caller.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["prediction"].model_version == "tiny-1"  # type: ignore[attr-defined]
