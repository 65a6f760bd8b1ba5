"""The real Open Inference Protocol clients against a real server process.

``tritonclient[http]`` (JSON tensors: ``binary_data=False``) and the ``kserve`` package's
``InferenceRESTClient`` (protocol v2) call ``anomaly-api serve`` over loopback; their
answers must equal the server's own ``/predict/batch`` answers for the same rows.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anomaly_api.testing import ServerProcess, running_server
from api_testing import ANOMALOUS, NORMAL

MODEL = "anomaly-detector"
ROWS = [NORMAL, ANOMALOUS, [0.2, -0.4, 0.6, 0.1, 0.0, 0.3, -0.2, 0.5]]
DETECTORS = ["isolation_forest", "local_outlier_factor", "zscore"]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifacts_dir: Path
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("oip")
    env = {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir), "ANOMALY_MAX_BATCH_ROWS": "5"}
    with running_server(workdir, env) as process:
        yield process


@pytest.fixture(scope="module")
def expected(server: ServerProcess) -> list[dict[str, Any]]:
    """The server's own answers for ``ROWS``, through ``/predict/batch``."""
    body = json.dumps({"observations": [{"features": row} for row in ROWS]}).encode()
    request = urllib.request.Request(
        server.url + "/predict/batch", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        predictions: list[dict[str, Any]] = json.load(response)["predictions"]
    return predictions


def test_tritonclient_health_metadata_and_infer(
    server: ServerProcess, expected: list[dict[str, Any]]
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.is_model_ready(MODEL, model_version="tiny-1")
        assert not client.is_model_ready("other-model")
        assert client.get_server_metadata()["name"] == "anomaly-api"
        meta = client.get_model_metadata(MODEL)
        assert meta["versions"] == ["tiny-1"]
        assert meta["inputs"][0]["shape"] == [-1, 8]

        features = triton.InferInput("features", [len(ROWS), 8], "FP64")
        features.set_data_from_numpy(np.array(ROWS, dtype=np.float64), binary_data=False)
        wanted = ["is_anomaly", "anomaly_score", "confidence", "zscore_score"]
        result = client.infer(
            MODEL,
            [features],
            outputs=[triton.InferRequestedOutput(name, binary_data=False) for name in wanted],
            request_id="triton-1",
            model_version="tiny-1",
        )
        assert result.get_response()["id"] == "triton-1"
        assert [o["name"] for o in result.get_response()["outputs"]] == wanted
        flags = result.as_numpy("is_anomaly")
        assert flags.dtype == np.bool_
        assert flags.tolist() == [p["is_anomaly"] for p in expected] == [False, True, False]
        assert result.as_numpy("anomaly_score").tolist() == [p["anomaly_score"] for p in expected]
        assert result.as_numpy("confidence").tolist() == [p["confidence"] for p in expected]
        zscores = [p["detectors"]["zscore"]["score"] for p in expected]
        assert result.as_numpy("zscore_score").tolist() == zscores

        # No outputs named: every output comes back (as JSON, whatever the client prefers).
        every = client.infer(MODEL, [features])
        assert every.as_numpy("local_outlier_factor_score").shape == (len(ROWS),)

        # One FP32 tensor per feature (MLServer's pandas style) answers the same decisions.
        columns = []
        for j in range(8):
            column = triton.InferInput(f"f{j}", [len(ROWS)], "FP32")
            column.set_data_from_numpy(
                np.array([row[j] for row in ROWS], dtype=np.float32), binary_data=False
            )
            columns.append(column)
        by_feature = client.infer(
            MODEL, columns, outputs=[triton.InferRequestedOutput("is_anomaly", binary_data=False)]
        )
        assert by_feature.as_numpy("is_anomaly").tolist() == [False, True, False]
    finally:
        client.close()


def test_tritonclient_sees_the_protocols_errors(server: ServerProcess) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        wrong = triton.InferInput("features", [1, 3], "FP64")
        wrong.set_data_from_numpy(np.zeros((1, 3)), binary_data=False)
        with pytest.raises(InferenceServerException, match=r"shape must be \[rows, 8\]") as bad:
            client.infer(MODEL, [wrong])
        assert bad.value.status() == "400"

        too_many = triton.InferInput("features", [6, 8], "FP64")
        too_many.set_data_from_numpy(np.zeros((6, 8)), binary_data=False)
        with pytest.raises(InferenceServerException, match="at most 5 rows") as large:
            client.infer(MODEL, [too_many])
        assert large.value.status() == "413"

        with pytest.raises(InferenceServerException, match="no version 'tiny-7'") as missing:
            client.get_model_metadata(MODEL, model_version="tiny-7")
        assert missing.value.status() == "404"

        binary = triton.InferInput("features", [1, 8], "FP64")
        binary.set_data_from_numpy(np.zeros((1, 8)), binary_data=True)
        with pytest.raises(InferenceServerException, match="binary tensor data extension"):
            client.infer(MODEL, [binary])
    finally:
        client.close()


async def test_kserve_inference_rest_client(
    server: ServerProcess, expected: list[dict[str, Any]]
) -> None:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        assert await client.is_server_live(server.url) is True
        assert await client.is_server_ready(server.url) is True
        assert await client.is_model_ready(server.url, MODEL) is True
        assert await client.is_model_ready(server.url, "other-model") is False

        request = InferRequest(
            model_name=MODEL,
            infer_inputs=[
                InferInput(
                    name="features",
                    shape=[len(ROWS), 8],
                    datatype="FP64",
                    data=[v for row in ROWS for v in row],
                )
            ],
            request_id="kserve-1",
        )
        response = await client.infer(server.url, request, model_name=MODEL)
        assert response.id == "kserve-1"
        assert response.model_name == MODEL  # (its parser drops model_version)
        got = {output.name: output.as_numpy() for output in response.outputs}
        assert got["is_anomaly"].tolist() == [p["is_anomaly"] for p in expected]
        assert got["anomaly_score"].tolist() == [p["anomaly_score"] for p in expected]
        for name in DETECTORS:
            scores = [p["detectors"][name]["score"] for p in expected]
            assert got[f"{name}_score"].tolist() == scores

        bad = InferRequest(
            model_name=MODEL,
            infer_inputs=[InferInput(name="features", shape=[1, 2], datatype="FP64", data=[1, 2])],
        )
        with pytest.raises(httpx.HTTPStatusError, match=r"shape must be \[rows, 8\]") as caught:
            await client.infer(server.url, bad, model_name=MODEL)
        assert caught.value.response.status_code == 400
    finally:
        await client.close()
