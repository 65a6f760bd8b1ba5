"""The Open Inference Protocol routes in-process: metadata, health, infer and the error matrix.

The real clients (tritonclient, kserve) against a real server are in
``tests/e2e/test_oip_clients.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from anomaly_api.api.oip_protocol import OipError, parse_infer_request
from api_testing import ANOMALOUS, NORMAL, make_settings, serve_app

MODEL = "/v2/models/anomaly-detector"
FEATURES = [f"f{i}" for i in range(8)]
DETECTORS = ["isolation_forest", "local_outlier_factor", "zscore"]
OUTPUTS = [
    "is_anomaly",
    "anomaly_score",
    "confidence",
    "severity",
    *(f"{d}_score" for d in DETECTORS),
]


def matrix(rows: list[list[float]], *, nested: bool = True, datatype: str = "FP64") -> dict:
    data: Any = rows if nested else [v for row in rows for v in row]
    shape = [len(rows), len(rows[0]) if rows else 8]
    return {"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}]}


def per_feature(rows: list[list[float]], column_shape: str = "[n]") -> dict:
    inputs = []
    for j, name in enumerate(FEATURES):
        column = [row[j] for row in rows]
        if column_shape == "[n]":
            inputs.append({"name": name, "shape": [len(rows)], "datatype": "FP64", "data": column})
        else:
            nested = [[v] for v in column]
            inputs.append(
                {"name": name, "shape": [len(rows), 1], "datatype": "FP64", "data": nested}
            )
    return {"inputs": inputs}


def outputs(body: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in body["outputs"]}


def assert_oip_error(response: httpx.Response, status: int, fragment: str = "") -> None:
    """The protocol's error body: exactly ``{"error": "<message>"}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert fragment in body["error"], body


# --- server and model metadata, health ---------------------------------------------------


async def test_server_metadata_and_health(client: httpx.AsyncClient) -> None:
    server = (await client.get("/v2")).json()
    assert server["name"] == "anomaly-api"
    assert server["extensions"] == []
    assert isinstance(server["version"], str)
    live = await client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    model_ready = await client.get(f"{MODEL}/ready")
    assert (model_ready.status_code, model_ready.json()) == (
        200,
        {"name": "anomaly-detector", "ready": True},
    )
    assert (await client.get(f"{MODEL}/versions/tiny-1/ready")).status_code == 200


async def test_model_metadata_describes_both_input_forms_and_every_output(
    client: httpx.AsyncClient,
) -> None:
    for path in (MODEL, f"{MODEL}/versions/tiny-1"):
        meta = (await client.get(path)).json()
        assert meta["name"] == "anomaly-detector"
        assert meta["versions"] == ["tiny-1"]
        assert meta["platform"] == "anomaly-api/sklearn-ensemble"
        assert meta["inputs"][0] == {"name": "features", "datatype": "FP64", "shape": [-1, 8]}
        assert [i["name"] for i in meta["inputs"][1:]] == FEATURES
        assert all(i["shape"] == [-1] for i in meta["inputs"][1:])
        assert [o["name"] for o in meta["outputs"]] == OUTPUTS
        kinds = {o["name"]: o["datatype"] for o in meta["outputs"]}
        assert kinds["is_anomaly"] == "BOOL"
        assert {kinds[name] for name in OUTPUTS[1:]} == {"FP64"}


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v2/models/other", "unknown model 'other'"),
        ("/v2/models/other/ready", "unknown model"),
        (f"{MODEL}/versions/tiny-9", "no version 'tiny-9'"),
        (f"{MODEL}/versions/tiny-9/ready", "no version"),
        ("/v2/nothing/here", "no Open Inference Protocol endpoint"),
    ],
)
async def test_unknown_models_versions_and_paths_are_404(
    client: httpx.AsyncClient, path: str, fragment: str
) -> None:
    assert_oip_error(await client.get(path), 404, fragment)


async def test_infer_on_another_model_or_version_is_404(client: httpx.AsyncClient) -> None:
    body = matrix([NORMAL])
    assert_oip_error(await client.post("/v2/models/other/infer", json=body), 404, "other")
    response = await client.post(f"{MODEL}/versions/tiny-2/infer", json=body)
    assert_oip_error(response, 404, "tiny-1")


async def test_without_a_model_ready_is_503_and_infer_is_503(tmp_path: Path) -> None:
    async with serve_app(make_settings(tmp_path)) as client:  # empty directory: no model
        ready = await client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        model_ready = await client.get(f"{MODEL}/ready")
        assert (model_ready.status_code, model_ready.json()["ready"]) == (503, False)
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        assert_oip_error(await client.post(f"{MODEL}/infer", json=matrix([NORMAL])), 503)
        assert_oip_error(await client.get(MODEL), 503, "no model is loaded")


# --- infer ----------------------------------------------------------------------------------


async def test_every_input_form_gives_the_answers_of_predict_batch(
    client: httpx.AsyncClient,
) -> None:
    rows = [NORMAL, ANOMALOUS, [0.1 * i for i in range(8)]]
    batch = await client.post(
        "/predict/batch", json={"observations": [{"features": r} for r in rows]}
    )
    expected = batch.json()["predictions"]
    for body in (
        matrix(rows),
        matrix(rows, nested=False),
        per_feature(rows),
        per_feature(rows, "[n,1]"),
    ):
        response = await client.post(f"{MODEL}/infer", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_name"] == "anomaly-detector"
        assert answer["model_version"] == "tiny-1"
        assert "id" not in answer
        got = outputs(answer)
        assert list(got) == OUTPUTS
        assert all(o["shape"] == [3] for o in answer["outputs"])
        assert got["is_anomaly"] == [p["is_anomaly"] for p in expected] == [False, True, False]
        assert got["anomaly_score"] == [p["anomaly_score"] for p in expected]
        assert got["confidence"] == [p["confidence"] for p in expected]
        assert got["severity"] == [p["severity"] for p in expected]
        for name in DETECTORS:
            assert got[f"{name}_score"] == [p["detectors"][name]["score"] for p in expected]


def _old_infer_body(predictions: list[dict[str, Any]], request_id: str | None) -> bytes:
    """The infer body as it was written from per-row answers, from the same values."""
    columns: list[tuple[str, str, list[Any]]] = [
        (name, "BOOL" if name == "is_anomaly" else "FP64", [p[name] for p in predictions])
        for name in OUTPUTS[:4]
    ]
    columns += [
        (f"{d}_score", "FP64", [p["detectors"][d]["score"] for p in predictions]) for d in DETECTORS
    ]
    body: dict[str, Any] = {
        "model_name": "anomaly-detector",
        "model_version": "tiny-1",
        "outputs": [
            {"name": name, "datatype": kind, "shape": [len(predictions)], "data": data}
            for name, kind, data in columns
        ],
    }
    if request_id is not None:
        body["id"] = request_id
    return orjson.dumps(body)


@pytest.mark.parametrize("request_id", [None, "req-7"])
async def test_default_outputs_are_the_same_bytes_as_before(
    client: httpx.AsyncClient, request_id: str | None
) -> None:
    """The columnar infer answer is byte for byte the per-row one it replaced (1 and 50
    rows: the one-row path included, extreme rows among them)."""
    rng = np.random.default_rng(3)
    for rows in ([ANOMALOUS], (rng.normal(size=(50, 8)) * [1, 1e6, 1, 1, 1, 1, 1, 1e-6]).tolist()):
        batch = await client.post(
            "/predict/batch", json={"observations": [{"features": r} for r in rows]}
        )
        body = matrix(rows) | ({} if request_id is None else {"id": request_id})
        response = await client.post(f"{MODEL}/infer", json=body)
        assert response.content == _old_infer_body(batch.json()["predictions"], request_id)


async def test_the_whole_answer_can_be_asked_for_by_name(client: httpx.AsyncClient) -> None:
    rows = [NORMAL, ANOMALOUS]
    batch = await client.post(
        "/predict/batch", json={"observations": [{"features": r} for r in rows]}
    )
    expected = batch.json()["predictions"]
    wanted = ["contributions", "cached", "observation_id", "zscore_vote"]
    body = matrix(rows) | {"outputs": [{"name": name} for name in wanted]}
    answer = (await client.post(f"{MODEL}/infer", json=body)).json()
    got = {o["name"]: o for o in answer["outputs"]}
    assert list(got) == wanted
    assert got["contributions"]["shape"] == [2, 8]
    shares = np.array(got["contributions"]["data"]).reshape(2, 8)
    for row, prediction in zip(shares.tolist(), expected, strict=True):
        assert {c["feature"]: c["share"] for c in prediction["contributions"]} == dict(
            zip(FEATURES, row, strict=True)
        )
    assert got["cached"] == {"name": "cached", "datatype": "BOOL", "shape": [2], "data": [True] * 2}
    assert got["observation_id"]["datatype"] == "BYTES"
    assert len(set(got["observation_id"]["data"])) == 2
    votes = [p["detectors"]["zscore"]["vote"] for p in expected]
    assert got["zscore_vote"] == {
        "name": "zscore_vote",
        "datatype": "BOOL",
        "shape": [2],
        "data": votes,
    }


async def test_the_versioned_path_and_any_single_tensor_name_work(
    client: httpx.AsyncClient,
) -> None:
    body = matrix([ANOMALOUS])
    body["inputs"][0]["name"] = "input-0"
    response = await client.post(f"{MODEL}/versions/tiny-1/infer", json=body)
    assert outputs(response.json())["is_anomaly"] == [True]


async def test_id_is_echoed_and_outputs_can_be_chosen(client: httpx.AsyncClient) -> None:
    body = matrix([NORMAL, ANOMALOUS]) | {
        "id": "req-42",
        "outputs": [{"name": "confidence"}, {"name": "is_anomaly", "parameters": {"x": 1}}],
    }
    answer = (await client.post(f"{MODEL}/infer", json=body)).json()
    assert answer["id"] == "req-42"
    assert [o["name"] for o in answer["outputs"]] == ["confidence", "is_anomaly"]
    assert outputs(answer)["is_anomaly"] == [False, True]


async def test_integer_tensors_equal_the_same_values_as_fp64(client: httpx.AsyncClient) -> None:
    rows = [[1, 2, -3, 0, 4, 1, 0, 2], [9, -9, 8, 7, -6, 9, 8, -7]]
    as_int = (await client.post(f"{MODEL}/infer", json=matrix(rows, datatype="INT64"))).json()
    as_float = await client.post(
        f"{MODEL}/infer", json=matrix([[float(v) for v in r] for r in rows])
    )
    assert outputs(as_int) == outputs(as_float.json())


async def test_fp32_values_are_read_in_single_precision(client: httpx.AsyncClient) -> None:
    rows = [[0.1, 1.1, -0.3, 0.7, 1.3, 0.2, -0.1, 0.9]]
    single = [[float(v) for v in np.array(rows[0], dtype=np.float32)]]
    fp32 = (await client.post(f"{MODEL}/infer", json=matrix(rows, datatype="FP32"))).json()
    fp64 = (await client.post(f"{MODEL}/infer", json=matrix(single))).json()
    assert outputs(fp32) == outputs(fp64)


async def test_infer_uses_the_cache_metrics_and_request_ids_of_predict(
    client: httpx.AsyncClient,
) -> None:
    def predictions_total(text: str) -> float:
        return sum(
            float(m) for m in re.findall(r"^anomaly_predictions_total\{.*\} (\S+)$", text, re.M)
        )

    rows = [[0.3, 0.1, -0.2, 0.4, 0.5, 0.6, -0.7, 0.8], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]]
    before = predictions_total((await client.get("/metrics")).text)
    response = await client.post(
        f"{MODEL}/infer", json=matrix(rows), headers={"X-Request-ID": "oip-trace-1"}
    )
    assert response.headers["X-Request-ID"] == "oip-trace-1"
    assert predictions_total((await client.get("/metrics")).text) == before + 2
    batch = await client.post(
        "/predict/batch", json={"observations": [{"features": r} for r in rows]}
    )
    assert [p["cached"] for p in batch.json()["predictions"]] == [True, True]
    error = await client.post(f"{MODEL}/infer", json={}, headers={"X-Request-ID": "oip-err-1"})
    assert error.headers["X-Request-ID"] == "oip-err-1"


async def test_time_aware_models_point_at_the_stream_endpoints(ta_artifacts_dir: Path) -> None:
    async with serve_app(make_settings(ta_artifacts_dir)) as client:
        assert_oip_error(await client.post(f"{MODEL}/infer", json=matrix([NORMAL])), 400, "stream")


# --- the error matrix: bad requests are 4xx in the protocol's format, never 500 -------------


def _with(**changes: Any) -> dict[str, Any]:
    body = matrix([NORMAL, ANOMALOUS])
    body["inputs"][0].update(changes)
    return body


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "JSON object"),
    ("no inputs", {"id": "x"}, "'inputs'"),
    ("empty inputs", {"inputs": []}, "'inputs'"),
    ("input not an object", {"inputs": [3]}, "inputs[0]"),
    ("BOOL", _with(datatype="BOOL"), "datatype 'BOOL' is not supported"),
    ("BYTES", _with(datatype="BYTES"), "datatype 'BYTES'"),
    ("FP16", _with(datatype="FP16"), "datatype 'FP16'"),
    ("no datatype", _with(datatype=None), "datatype None"),
    ("1-D matrix", _with(shape=[16]), "shape must be [rows, 8]"),
    ("wrong width", _with(shape=[4, 4]), "shape must be [rows, 8]"),
    ("negative dim", _with(shape=[-1, 8]), "non-negative integers"),
    ("shape not a list", _with(shape="2,8"), "'shape'"),
    ("count mismatch", _with(shape=[3, 8]), "holds 24 values, 'data' has 16"),
    ("zero rows", _with(shape=[0, 8], data=[]), "no rows"),
    ("string values", _with(data=[["1"] * 8] * 2), "must be numbers"),
    ("bool values", _with(data=[[True] * 8] * 2), "must be numbers"),
    ("null values", _with(data=[[None] * 8] * 2), "must be numbers"),
    ("data not a list", _with(data=5), "'data' must be a JSON array"),
    (
        "no data (binary)",
        {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64"}]},
        "binary",
    ),
    ("float in INT32", _with(datatype="INT32"), "INT32 data must be integers"),
    ("UINT8 out of range", _with(datatype="UINT8", data=[[300] * 8] * 2), "range of UINT8"),
    ("too extreme", _with(data=[[1e200] * 8] * 2), "magnitude at most"),
    ("huge integer", _with(data=[[10**400] * 8] * 2), "not valid JSON"),  # orjson refuses it
    ("FP32 overflow", _with(datatype="FP32", data=[[1e39] * 8] * 2), "magnitude at most"),
    ("id not a string", matrix([NORMAL]) | {"id": 7}, "'id' must be a string"),
    ("unknown output", matrix([NORMAL]) | {"outputs": [{"name": "nope"}]}, "unknown outputs"),
    ("outputs malformed", matrix([NORMAL]) | {"outputs": ["is_anomaly"]}, "'outputs'"),
    (
        "unknown feature input",
        {
            "inputs": [
                *per_feature([NORMAL])["inputs"][:7],
                {"name": "zz", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ]
        },
        "unknown inputs ['zz']",
    ),
    ("missing feature input", {"inputs": per_feature([NORMAL])["inputs"][:7]}, "missing feature"),
    ("duplicate input", {"inputs": per_feature([NORMAL])["inputs"] * 2}, "given twice"),
    (
        "ragged feature rows",
        {
            "inputs": [
                *per_feature([NORMAL])["inputs"][:7],
                {"name": "f7", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
            ]
        },
        "has 2 rows",
    ),
    (
        "feature shape 2-D",
        {"inputs": [{**t, "shape": [1, 2]} for t in per_feature([NORMAL])["inputs"]]},
        "[rows] or [rows, 1]",
    ),
]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [(b, f) for _, b, f in BAD_BODIES],
    ids=[case for case, _, _ in BAD_BODIES],
)
async def test_bad_tensors_are_400_with_the_protocols_error_body(
    shared_client: httpx.AsyncClient, body: Any, fragment: str
) -> None:
    assert_oip_error(await shared_client.post(f"{MODEL}/infer", json=body), 400, fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"{", "not valid JSON"), (b'{"inputs": NaN}', "not valid JSON"), (b"", "not valid JSON")],
)
async def test_malformed_json_is_400(
    shared_client: httpx.AsyncClient, content: bytes, fragment: str
) -> None:
    response = await shared_client.post(
        f"{MODEL}/infer", content=content, headers={"content-type": "application/json"}
    )
    assert_oip_error(response, 400, fragment)


async def test_the_binary_tensor_extension_is_refused(shared_client: httpx.AsyncClient) -> None:
    json_part = (
        b'{"inputs":[{"name":"features","shape":[1,8],"datatype":"FP64",'
        b'"parameters":{"binary_data_size":64}}]}'
    )
    response = await shared_client.post(
        f"{MODEL}/infer",
        content=json_part + bytes(64),
        headers={
            "Inference-Header-Content-Length": str(len(json_part)),
            "content-type": "application/octet-stream",
        },
    )
    assert_oip_error(response, 400, "binary tensor data extension is not supported")


async def test_rows_and_bodies_over_the_limits_are_413(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, max_batch_rows=3, max_body_bytes=4096)
    async with serve_app(settings) as client:
        rows = await client.post(f"{MODEL}/infer", json=matrix([NORMAL] * 4))
        assert_oip_error(rows, 413, "at most 3 rows")
        big = matrix([NORMAL]) | {"id": "x" * 5000}
        assert_oip_error(await client.post(f"{MODEL}/infer", json=big), 413, "4096 bytes")
        # The other routes keep the API's own error format for the same limit.
        other = await client.post("/predict", json={"features": NORMAL, "pad": "x" * 5000})
        assert other.status_code == 413
        assert other.json()["error"]["code"] == "payload_too_large"


async def test_api_keys_guard_infer_and_metadata_not_health(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, api_keys="k-oip-1")
    async with serve_app(settings) as client:
        assert_oip_error(await client.post(f"{MODEL}/infer", json=matrix([NORMAL])), 401, "key")
        assert_oip_error(await client.get(MODEL, headers={"X-API-Key": "wrong"}), 403)
        assert (await client.get("/v2/health/ready")).status_code == 200
        ok = await client.post(
            f"{MODEL}/infer", json=matrix([NORMAL]), headers={"Authorization": "Bearer k-oip-1"}
        )
        assert ok.status_code == 200


async def test_the_model_name_is_a_setting(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, oip_model_name="pump-7")
    async with serve_app(settings) as client:
        assert (await client.get("/v2/models/pump-7")).json()["name"] == "pump-7"
        assert_oip_error(await client.get(MODEL), 404, "'pump-7'")
        answer = await client.post("/v2/models/pump-7/infer", json=matrix([NORMAL]))
        assert answer.json()["model_name"] == "pump-7"


async def test_other_routes_keep_the_api_error_format(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.post("/predict", json={"features": [1.0]})
    assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
    assert (await shared_client.get("/nope")).json()["error"]["code"] == "not_found"


# --- the mapping alone ----------------------------------------------------------------------


def test_parse_keeps_row_order_and_deduplicates_requested_outputs() -> None:
    rows = [[float(10 * i + j) for j in range(8)] for i in range(3)]
    body = per_feature(rows) | {"outputs": [{"name": "confidence"}, {"name": "confidence"}]}
    parsed = parse_infer_request(body, FEATURES, DETECTORS, max_rows=10)
    assert parsed.X.tolist() == rows
    assert parsed.outputs == ("confidence",)
    assert parsed.id is None


def test_parse_refuses_too_many_rows_with_413() -> None:
    with pytest.raises(OipError) as caught:
        parse_infer_request(matrix([NORMAL] * 3), FEATURES, DETECTORS, max_rows=2)
    assert caught.value.status == 413
