"""The batch path: the body sent, the answers parsed from either form the server may
choose (the JSON form, or the tensor form asked for with ``Accept``), and a client that
leaves the host process's garbage collector alone.

``tensor_form`` writes a JSON batch answer as the agreed tensor form (an Open Inference
Protocol ``$inference_response``); results parsed from both must be equal, ``raw``
included.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from anomaly_api.client import (
    AnomalyClient,
    AsyncAnomalyClient,
    Contribution,
    Prediction,
    _client,
    _parse,
)

FEATURES = ["f0", "f1", "f2"]
DETECTORS = {"zscore": -2.0, "isolation_forest": -0.5}


def old_batch_content(rows: Any) -> bytes:
    return _parse.json_content({"observations": [_client.observation(r) for r in rows]})


def answer(i: int, top_k: int | None = None, **more: Any) -> dict[str, Any]:
    """One ``/predict/batch`` answer as the server writes it (ints where floats may be)."""
    shares = [0.5, 0.25 + 0.125 * (i % 2), 0.25 - 0.125 * (i % 2)]  # ties when i is even
    order = sorted(range(3), key=lambda j: -shares[j])[:top_k]
    return {
        "observation_id": f"obs-{i}",
        "is_anomaly": i % 3 == 0,
        "anomaly_score": -2.5 + i if i % 2 else i,  # an int now and then: made a float
        "confidence": 0.75,
        "severity": 0.5 * i / (1 + i),
        "contributions": [{"feature": FEATURES[j], "share": shares[j], "why": None} for j in order],
        "model_version": "tiny-1",
        "inference_ms": 3,
        "detectors": {
            "zscore": {"score": -1.0 * i, "threshold": -2.0, "vote": i % 3 == 0},
            "isolation_forest": {"score": -0.3, "threshold": -0.5, "vote": False},
        },
        "cached": bool(i % 2),
        **more,
    }


def tensor_form(items: list[dict[str, Any]], **extra_outputs: list[Any]) -> dict[str, Any]:
    """The tensor form of a batch of answers listing every feature's contribution."""
    n = len(items)

    def output(name: str, datatype: str, data: list[Any], shape: list[int] | None = None):
        return {"name": name, "datatype": datatype, "shape": shape or [n], "data": data}

    shares = [{c["feature"]: c["share"] for c in item["contributions"]} for item in items]
    outputs = [
        output("observation_id", "BYTES", [a["observation_id"] for a in items]),
        output("is_anomaly", "BOOL", [a["is_anomaly"] for a in items]),
        *(output(k, "FP64", [float(a[k]) for a in items]) for k in ("anomaly_score", "confidence")),
        output("severity", "FP64", [a["severity"] for a in items]),
        output("cached", "BOOL", [a["cached"] for a in items]),
        output(
            "contributions", "FP64", [s[f] for s in shares for f in FEATURES], [n, len(FEATURES)]
        ),
    ]
    for name in DETECTORS:
        outputs.append(
            output(f"{name}_score", "FP64", [a["detectors"][name]["score"] for a in items])
        )
        outputs.append(
            output(f"{name}_vote", "BOOL", [a["detectors"][name]["vote"] for a in items])
        )
    outputs += [output(name, "FP64", data) for name, data in extra_outputs.items()]
    return {
        "model_name": "anomaly-ensemble",
        "model_version": "tiny-1",
        "id": "req-1",
        "parameters": {
            "inference_ms": 3.0,
            "n_anomalies": sum(a["is_anomaly"] for a in items),
            "features": FEATURES,
            "thresholds": DETECTORS,
        },
        "outputs": outputs,
    }


def tensor_response(body: Mapping[str, Any]) -> httpx.Response:
    return httpx.Response(200, content=orjson.dumps(body), headers={"Content-Type": _parse.TENSORS})


def json_response(body: Mapping[str, Any]) -> httpx.Response:
    return httpx.Response(
        200, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )


def test_a_prediction_carries_every_answer_field() -> None:
    item = answer(1)
    prediction = _parse.parse_prediction(item)
    assert prediction.severity == 0.25
    assert prediction.contributions == (
        Contribution("f0", 0.5, None),
        Contribution("f1", 0.375, None),
        Contribution("f2", 0.125, None),
    )
    assert prediction.detectors["zscore"].threshold == -2.0
    assert type(prediction.anomaly_score) is float
    assert type(prediction.inference_ms) is float
    assert prediction.raw is item
    assert prediction.extra == {}


def test_an_older_servers_answer_still_parses() -> None:
    item = {
        k: v
        for k, v in answer(7).items()
        if k not in ("cached", "inference_ms", "severity", "contributions")
    }
    prediction = _parse.parse_prediction(item)
    assert (prediction.cached, prediction.inference_ms, prediction.severity) == (False, 0.0, 0.0)
    assert prediction.contributions == ()


def test_predictions_stay_frozen_and_hashable() -> None:
    prediction = _parse.parse_prediction(answer(1))
    with pytest.raises(AttributeError):
        prediction.anomaly_score = 0.0  # type: ignore[misc]
    assert prediction.detectors["zscore"].score == -1.0  # cached after the first use
    assert prediction.detectors is prediction.detectors
    twin = _parse.parse_prediction(answer(1))
    assert prediction == twin
    assert prediction != _parse.parse_prediction(answer(2))
    assert hash(prediction) == hash(twin)


def test_unknown_answer_fields_are_kept() -> None:
    item = answer(4, drift_flag=True, explanation={"text": "f1 high"})
    prediction = _parse.read_batch(json_response({"predictions": [item]}))[0]
    assert prediction.raw == item
    assert prediction.extra == {"drift_flag": True, "explanation": {"text": "f1 high"}}


@pytest.mark.parametrize("top_k", [None, 1, 2, 3, 99])
def test_the_tensor_form_gives_the_json_forms_predictions(top_k: int | None) -> None:
    items = [answer(i) for i in range(7)]
    expected = [answer(i, top_k) for i in range(7)]
    from_json = _parse.read_batch(json_response({"predictions": expected}))
    from_tensors = _parse.read_batch(tensor_response(tensor_form(items)), top_k)
    assert from_tensors == from_json
    for tensor, plain in zip(from_tensors, from_json, strict=True):
        assert dict(tensor.raw) == plain.raw  # the same dict, keys in the same order
        assert list(tensor.raw) == list(plain.raw)
        assert tensor.contributions == plain.contributions
        assert tensor.detectors == plain.detectors
        assert repr(tensor) == repr(plain)
        assert (type(tensor.anomaly_score), type(tensor.severity)) == (float, float)


def test_ties_keep_the_feature_order_and_unknown_outputs_are_kept() -> None:
    body = tensor_form([answer(0), answer(2)], drift=[0.5, 1.5])
    first, second = _parse.parse_tensors(body)
    assert [c.feature for c in first.contributions] == ["f0", "f1", "f2"]  # f1, f2 tie
    assert (first.extra, second.extra) == ({"drift": 0.5}, {"drift": 1.5})


def test_nested_tensor_data_is_read_row_major() -> None:
    body = tensor_form([answer(1), answer(3)])
    contributions = next(o for o in body["outputs"] if o["name"] == "contributions")
    flat = contributions["data"]
    contributions["data"] = [flat[:3], flat[3:]]
    assert _parse.parse_tensors(body) == _parse.parse_batch({"predictions": [answer(1), answer(3)]})
    assert [p.contributions for p in _parse.parse_tensors(body)] == [
        _parse.parse_prediction(answer(i)).contributions for i in (1, 3)
    ]


def test_an_empty_tensor_answer_is_no_predictions() -> None:
    assert _parse.parse_tensors(tensor_form([])) == []


@pytest.mark.parametrize(
    "rows",
    [
        [[0.5, -1.25, 3.0], [1e-300, -0.0, 7.0]],
        [(0.5, -1.25, 3.0)],
        [{"f0": 1.0, "f1": 2.0}, MappingProxyType({"f1": 3.5, "f0": -1.0})],
        [np.array([0.1, 0.2, 0.3]), [1.0, 2.0, 3.0]],
    ],
    ids=["lists", "tuples", "mappings", "numpy-and-list"],
)
def test_batch_body_is_the_old_body(rows: list[Any]) -> None:
    assert _client.batch_content(rows) == old_batch_content(rows)


def test_top_k_is_sent_in_the_body() -> None:
    sent = orjson.loads(_client.batch_content([[1.0, 2.0]], top_k=2))
    assert sent == {"observations": [{"features": [1.0, 2.0]}], "top_k": 2}
    assert _client.observation([1.0], "a", 1) == {
        "features": [1.0],
        "observation_id": "a",
        "top_k": 1,
    }


def test_numpy_rows_are_sent_as_numbers() -> None:
    matrix = np.random.default_rng(0).normal(size=(3, 4))
    sent = orjson.loads(_client.batch_content(matrix))
    assert sent == {"observations": [{"features": row} for row in matrix.tolist()]}


def _batch_transport(seen: list[Any], accepts: list[str], tensors: bool) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        accepts.append(request.headers["accept"])
        if request.url.path == "/predict":
            return json_response(answer(0))
        observations = orjson.loads(request.content)["observations"]
        seen.extend(o["features"] for o in observations)
        if tensors:
            items = [answer(i) for i in range(len(observations))]
            echo = [o["features"][0] for o in observations]
            return tensor_response(tensor_form(items, echo=echo))
        items = [answer(i, echo=o["features"][0]) for i, o in enumerate(observations)]
        return json_response({"predictions": items})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("tensors", [True, False], ids=["tensors", "json"])
def test_predict_many_asks_for_tensors_and_reads_either_form(tensors: bool) -> None:
    matrix = np.random.default_rng(1).normal(size=(25, 8))
    seen: list[Any] = []
    accepts: list[str] = []
    transport = _batch_transport(seen, accepts, tensors)
    with AnomalyClient("http://test", max_batch_rows=10, transport=transport) as client:
        predictions = client.predict_many(matrix)
        single = client.predict(matrix[0].tolist())
    assert seen[:25] == matrix.tolist()
    assert [p.extra["echo"] for p in predictions] == matrix[:, 0].tolist()
    assert accepts == [_parse.BATCH_ACCEPT] * 3 + ["application/json"]
    assert _parse.BATCH_ACCEPT == (
        "application/vnd.anomaly-api.tensors+json, application/json;q=0.5"
    )
    assert single.observation_id == "obs-0"


async def test_async_predict_many_parses_as_the_sync_client() -> None:
    rows = np.random.default_rng(2).normal(size=(12, 8)).tolist()
    seen: list[Any] = []
    accepts: list[str] = []
    transport = _batch_transport(seen, accepts, tensors=True)  # serves async clients too
    async with AsyncAnomalyClient("http://test", max_batch_rows=5, transport=transport) as client:
        predictions = await client.predict_many(rows, top_k=1)
    assert seen == rows
    expected = [_parse.parse_prediction(answer(i % 5, 1, echo=r[0])) for i, r in enumerate(rows)]
    assert predictions == expected
    assert [dict(p.raw) for p in predictions] == [p.raw for p in expected]
    assert accepts == [_parse.BATCH_ACCEPT] * 3


def test_the_client_never_touches_the_garbage_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the client paused or ran the process's garbage collector")

    for name in ("disable", "enable", "freeze", "unfreeze", "collect"):
        monkeypatch.setattr(gc, name, refuse)
    for tensors in (True, False):
        transport = _batch_transport([], [], tensors)
        with AnomalyClient("http://test", max_batch_rows=4, transport=transport) as client:
            predictions = client.predict_many([[float(i)] for i in range(10)])
        assert len(predictions) == 10
        assert all(isinstance(p, Prediction) for p in predictions)
    assert gc.isenabled()


def test_a_bad_body_raises_a_decode_error() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        _parse.read_batch(httpx.Response(200, content=b"{not json"))
