"""``POST /predict/batch`` negotiated as tensors: the JSON answer's values, column by column.

``Accept: application/vnd.anomaly-api.tensors+json`` answers an Open Inference Protocol
``$inference_response`` written by the code that writes ``/v2/.../infer`` answers. Its
numbers must be exactly the JSON answer's (the same float64 written by the same orjson),
for fresh and cached rows alike, whatever ``top_k`` the JSON answer was cut to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from anomaly_api.api.negotiation import negotiate
from anomaly_api.api.oip_protocol import TENSORS_MEDIA_TYPE, tensors_response
from anomaly_api.service.answers import ColumnarBatchAnswer
from api_testing import ANOMALOUS, NORMAL, make_settings, serve_app
from factories import answer_batches

JSON = "application/json"
FEATURES = [f"f{i}" for i in range(8)]
MODEL_NAME = "anomaly-detector"


def columns_of_json(answer: dict[str, Any]) -> dict[str, Any]:
    """The JSON batch answer as the tensors form's outputs (contributions by feature name:
    the JSON answer may list only the ``top_k`` largest)."""
    rows = answer["predictions"]
    columns: dict[str, Any] = {
        name: [row[name] for row in rows]
        for name in (
            "observation_id",
            "is_anomaly",
            "anomaly_score",
            "confidence",
            "severity",
            "cached",
        )
    }
    columns["contributions"] = [
        {c["feature"]: c["share"] for c in row["contributions"]} for row in rows
    ]
    for detector in rows[0]["detectors"]:
        columns[f"{detector}_score"] = [row["detectors"][detector]["score"] for row in rows]
        columns[f"{detector}_vote"] = [row["detectors"][detector]["vote"] for row in rows]
    return columns


def assert_same_answer(tensors: dict[str, Any], answer: dict[str, Any]) -> None:
    """Every output of ``tensors`` equals the JSON ``answer``'s column (exact floats)."""
    n = len(answer["predictions"])
    parameters = tensors["parameters"]
    features = parameters["features"]
    expected = columns_of_json(answer)
    outputs = {output["name"]: output for output in tensors["outputs"]}
    assert list(outputs) == list(expected)
    assert tensors["model_version"] == answer["model_version"]
    assert parameters["n_anomalies"] == answer["n_anomalies"]
    for name, column in expected.items():
        output = outputs[name]
        if name == "contributions":
            assert output["shape"] == [n, len(features)]
            matrix = np.array(output["data"], dtype=np.float64).reshape(n, len(features))
            for row, shares in zip(matrix.tolist(), column, strict=True):
                by_name = dict(zip(features, row, strict=True))
                assert {feature: by_name[feature] for feature in shares} == shares
            continue
        assert output["shape"] == [n]
        assert output["data"] == column, name
        kind = type(column[0])
        datatype = {str: "BYTES", bool: "BOOL", float: "FP64"}[kind]
        assert output["datatype"] == datatype, name
    for row in answer["predictions"]:
        for detector, verdict in row["detectors"].items():
            assert parameters["thresholds"][detector] == verdict["threshold"]


# --- the rendering alone, on any columns ------------------------------------------------


@given(answer_batches())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_tensors_hold_the_json_answers_values(batch: ColumnarBatchAnswer) -> None:
    tensors = orjson.loads(tensors_response(batch, MODEL_NAME, "req-1"))
    answer = orjson.loads(batch.to_json())
    assert_same_answer(tensors, answer)
    assert tensors["parameters"]["inference_ms"] == answer["inference_ms"]
    assert (tensors["model_name"], tensors["id"]) == (MODEL_NAME, "req-1")


# --- the route ----------------------------------------------------------------------------


async def test_fresh_and_cached_rows_answer_alike_in_both_forms(tiny_artifacts_dir: Path) -> None:
    """Two apps given the same requests (so the same cache states), one asked for JSON and
    one for tensors: every column equal, cached and fresh rows mixed, every ``top_k``."""
    rng = np.random.default_rng(7)
    rows = rng.normal(scale=3.0, size=(300, 8))
    rows[::7] *= 1e6  # some extreme readings
    rows[::11] = 0.0  # some at the centre
    settings = make_settings(tiny_artifacts_dir)
    async with serve_app(settings) as as_json, serve_app(settings) as as_tensors:
        for top_k in (None, 1, 8):
            warm = {"observations": [{"features": r} for r in rows[:100:3].tolist()]}
            for client in (as_json, as_tensors):
                await client.post("/predict/batch", json=warm)
            body: dict[str, Any] = {
                "observations": [
                    {"features": r, "observation_id": f"o{i}"} for i, r in enumerate(rows.tolist())
                ],
                "top_k": top_k,
            }
            answer = await as_json.post("/predict/batch", json=body)
            tensors = await as_tensors.post(
                "/predict/batch",
                json=body,
                headers={"Accept": TENSORS_MEDIA_TYPE, "X-Request-ID": "trace-7"},
            )
            assert tensors.status_code == 200
            assert tensors.headers["content-type"] == TENSORS_MEDIA_TYPE
            parsed = tensors.json()
            assert_same_answer(parsed, answer.json())
            cached = answer.json()["predictions"]
            assert 0 < sum(p["cached"] for p in cached) < len(rows)
            assert parsed["id"] == "trace-7"
            assert parsed["model_name"] == settings.oip_model_name
            assert parsed["parameters"]["features"] == FEATURES
            rows = rows + 0.5  # fresh rows for the next top_k, the warm third cached again


@pytest.mark.parametrize("accept", [None, "*/*", JSON, "application/*", "text/html, */*;q=0.1"])
async def test_any_other_accept_keeps_the_json_answer(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    body = {"observations": [{"features": NORMAL, "observation_id": "a"}]}
    reference = await client.post("/predict/batch", json=body)
    headers = {} if accept is None else {"Accept": accept}
    response = await client.post("/predict/batch", json=body, headers=headers)
    assert response.headers["content-type"] == JSON
    assert _timeless(response.content) == _timeless(reference.content)


def _timeless(content: bytes) -> bytes:
    """A JSON answer without its timings and cache flags (the rest is byte for byte)."""
    content = re.sub(rb'"inference_ms":[^,}]+', b"", content)
    return re.sub(rb'"cached":(true|false)', b"", content)


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml, text/*", f"{TENSORS_MEDIA_TYPE};q=0, {JSON};q=0"]
)
async def test_an_accept_that_allows_neither_form_is_406(
    client: httpx.AsyncClient, accept: str
) -> None:
    body = {"observations": [{"features": ANOMALOUS}]}
    response = await client.post("/predict/batch", json=body, headers={"Accept": accept})
    assert response.status_code == 406
    error = response.json()["error"]
    assert error["code"] == "not_acceptable"
    assert TENSORS_MEDIA_TYPE in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        (TENSORS_MEDIA_TYPE, TENSORS_MEDIA_TYPE),
        (f"{TENSORS_MEDIA_TYPE}, */*", TENSORS_MEDIA_TYPE),
        (f"{JSON};q=0.5, {TENSORS_MEDIA_TYPE}", TENSORS_MEDIA_TYPE),
        (f"{JSON}, {TENSORS_MEDIA_TYPE};q=0.9", JSON),
        (f"{JSON}, {TENSORS_MEDIA_TYPE}", JSON),
        (f"application/*;q=0.2, {TENSORS_MEDIA_TYPE};q=0.1", JSON),
        ("APPLICATION/VND.ANOMALY-API.TENSORS+JSON ; q=1", TENSORS_MEDIA_TYPE),
        ("text/html", None),
        (f"{JSON};q=0", None),
        (f"{JSON};q=oops", None),
    ],
)
def test_negotiation(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept, (JSON, TENSORS_MEDIA_TYPE)) == chosen
