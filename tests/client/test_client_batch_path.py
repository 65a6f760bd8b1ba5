"""The batch path's cheaper encoding and parsing give what the plain code gave.

``old_parse_prediction`` and ``old_batch_content`` are copies of the client's code before
it built ``Prediction``s without their ``__init__`` and encoded the body in one pass; the
new code must agree with them on the same answers and rows.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from anomaly_api.client import AnomalyClient, AsyncAnomalyClient, Prediction, _core


def old_parse_prediction(data: Mapping[str, Any]) -> Prediction:
    return Prediction(
        observation_id=str(data["observation_id"]),
        is_anomaly=bool(data["is_anomaly"]),
        anomaly_score=float(data["anomaly_score"]),
        confidence=float(data["confidence"]),
        model_version=str(data["model_version"]),
        cached=bool(data.get("cached", False)),
        inference_ms=float(data.get("inference_ms", 0.0)),
        raw=data,
    )


def old_batch_content(rows: Any) -> bytes:
    return _core.json_content({"observations": [_core.observation(r) for r in rows]})


def answer(i: int, **more: Any) -> dict[str, Any]:
    """One ``/predict/batch`` answer as the server writes it (ints where floats may be)."""
    return {
        "observation_id": f"obs-{i}",
        "is_anomaly": i % 3 == 0,
        "anomaly_score": -2.5 + i if i % 2 else i,  # an int now and then: made a float
        "confidence": 0.75,
        "severity": 0.5 * i,
        "contributions": [{"feature": "f1", "share": 0.6, "why": None}],
        "model_version": "tiny-1",
        "inference_ms": 3,
        "detectors": {
            "zscore": {"score": -1.0 * i, "threshold": -2.0, "vote": i % 3 == 0},
            "isolation_forest": {"score": -0.3, "threshold": -0.5, "vote": False},
        },
        "cached": bool(i % 2),
        **more,
    }


def test_predictions_equal_the_old_parsing_field_for_field() -> None:
    items = [answer(i) for i in range(6)] + [
        {k: v for k, v in answer(7).items() if k not in ("cached", "inference_ms")}
    ]
    for item in items:
        new, old = _core.parse_prediction(item), old_parse_prediction(item)
        assert new == old
        assert repr(new) == repr(old)
        assert vars(new) == vars(old)  # every attribute, raw included
        assert new.detectors == old.detectors
        assert new.extra == old.extra
        assert type(new.anomaly_score) is float
        assert type(new.inference_ms) is float
        assert new.raw is item
    assert _core.parse_prediction(items[-1]).cached is False
    assert _core.parse_prediction(items[-1]).inference_ms == 0.0


def test_predictions_stay_frozen_and_hashable() -> None:
    prediction = _core.parse_prediction(answer(1))
    with pytest.raises(AttributeError):
        prediction.anomaly_score = 0.0  # type: ignore[misc]
    assert prediction.detectors["zscore"].score == -1.0  # cached after the first use
    assert prediction.detectors is prediction.detectors
    twin = _core.parse_prediction(answer(1))
    assert prediction == twin
    assert prediction != _core.parse_prediction(answer(2))
    assert hash(prediction) == hash(twin)


def test_unknown_answer_fields_are_kept() -> None:
    item = answer(4, drift_flag=True, explanation={"text": "f1 high"})
    prediction = _core.read_batch(
        httpx.Response(200, content=orjson.dumps({"predictions": [item]}))
    )[0]
    assert prediction.raw == item
    assert prediction.extra == {
        "severity": 2.0,
        "contributions": [{"feature": "f1", "share": 0.6, "why": None}],
        "drift_flag": True,
        "explanation": {"text": "f1 high"},
    }


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
    assert _core.batch_content(rows) == old_batch_content(rows)


def test_numpy_rows_are_sent_as_numbers() -> None:
    matrix = np.random.default_rng(0).normal(size=(3, 4))
    sent = orjson.loads(_core.batch_content(matrix))
    assert sent == {"observations": [{"features": row} for row in matrix.tolist()]}


def _batch_transport(seen: list[Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        observations = orjson.loads(request.content)["observations"]
        seen.extend(o["features"] for o in observations)
        items = [answer(i, echo=o["features"]) for i, o in enumerate(observations)]
        return httpx.Response(200, content=orjson.dumps({"predictions": items}))

    return httpx.MockTransport(handler)


def test_predict_many_takes_a_numpy_matrix() -> None:
    matrix = np.random.default_rng(1).normal(size=(25, 8))
    seen: list[Any] = []
    with AnomalyClient(
        "http://test", max_batch_rows=10, transport=_batch_transport(seen)
    ) as client:
        predictions = client.predict_many(matrix)
    assert seen == matrix.tolist()
    assert [p.extra["echo"] for p in predictions] == matrix.tolist()


async def test_async_predict_many_parses_as_the_sync_client() -> None:
    rows = np.random.default_rng(2).normal(size=(12, 8)).tolist()
    seen: list[Any] = []
    transport = _batch_transport(seen)  # MockTransport serves async clients too
    async with AsyncAnomalyClient("http://test", max_batch_rows=5, transport=transport) as client:
        predictions = await client.predict_many(rows)
    assert seen == rows
    expected = [old_parse_prediction(answer(i % 5, echo=r)) for i, r in enumerate(rows)]
    assert predictions == expected
    assert [vars(p) for p in predictions] == [vars(p) for p in expected]


def test_gc_pause_restores_the_collector_once_every_block_ends() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with _core.gc_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(5)
        with _core.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other thread's block is still running
    finally:
        release.set()
        thread.join(5)
    assert gc.isenabled()


def test_gc_pause_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with _core.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gc_pause_ends_on_an_error() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        _core.read_batch(httpx.Response(200, content=b"{not json"))
    assert gc.isenabled()
