"""The ``/predict/batch`` body's vectorised path accepts only what the model accepts.

``_columnar_batch`` parses a body into one float64 matrix without a Pydantic model per row;
for anything it declines, the model validates the body and names the error. So each body
it accepts must be one the model accepts, with the same values and ids, and the answers
of both paths must be the same.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import ClientDisconnect, Request

from anomaly_api.api.body import _columnar_batch, load_json
from anomaly_api.api.schemas import PredictBatchRequest
from anomaly_api.config import Settings
from api_testing import ANOMALOUS, NORMAL

SETTINGS = Settings(max_observation_id_length=6)


def _model_view(data: Any) -> tuple[list[Any], list[str | None], int | None] | None:
    """What the model and the id-length check make of ``data``; None when either refuses."""
    try:
        parsed = PredictBatchRequest.model_validate(data)
    except ValueError:
        return None
    ids = [o.observation_id for o in parsed.observations]
    if any(oid is not None and len(oid) > SETTINGS.max_observation_id_length for oid in ids):
        return None
    return [o.features for o in parsed.observations], ids, parsed.top_k


NUMBERS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0.0, -0.0, 1e150, -1e150, 1.0000000000000002e150, 2**53, 2**53 + 1]),
)
ODD_VALUES = st.one_of(st.booleans(), st.none(), st.text(max_size=3), st.lists(NUMBERS))
ROW = st.lists(NUMBERS, min_size=3, max_size=3) | st.lists(
    st.one_of(NUMBERS, ODD_VALUES), max_size=4
)
IDS = st.one_of(st.none(), st.text(min_size=1, max_size=6)) | st.one_of(
    st.text(max_size=8), st.integers(), st.just("")
)
OBSERVATION = st.fixed_dictionaries(
    {"features": ROW}, optional={"observation_id": IDS}
) | st.one_of(
    st.fixed_dictionaries({"features": ROW}, optional={"extra": st.integers()}),
    st.fixed_dictionaries({"features": st.dictionaries(st.text(max_size=2), NUMBERS)}),
    st.none(),
    st.integers(),
    st.lists(NUMBERS, max_size=2),
)
TOP_K = st.one_of(st.none(), st.integers(1, 3)) | st.one_of(
    st.integers(-1, 0), st.booleans(), st.floats(), st.text(max_size=1)
)
BODY = st.fixed_dictionaries(
    {"observations": st.lists(OBSERVATION, min_size=1, max_size=4)}, optional={"top_k": TOP_K}
) | st.one_of(
    st.fixed_dictionaries({"observations": st.lists(OBSERVATION, max_size=4)}),
    st.none(),
    st.lists(st.integers()),
    st.dictionaries(st.text(max_size=3), NUMBERS),
)

VALID_BODY = st.fixed_dictionaries(
    {
        "observations": st.lists(
            st.fixed_dictionaries(
                {"features": st.lists(NUMBERS, min_size=3, max_size=3)},
                optional={"observation_id": st.none() | st.text(min_size=1, max_size=6)},
            ),
            min_size=1,
            max_size=4,
        )
    },
    optional={"top_k": st.none() | st.integers(1, 3)},
)
"""Bodies of the model's shape, their values sometimes out of its range."""


@given(st.one_of(VALID_BODY, BODY))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_accepted_bodies_are_the_models_with_its_values(data: Any) -> None:
    rows = _columnar_batch(data, SETTINGS)
    if rows is None:
        return  # the model validates it (and names the error, if any)
    view = _model_view(data)
    assert view is not None, data
    features, ids, top_k = view
    assert isinstance(rows.rows, np.ndarray)
    np.testing.assert_array_equal(rows.rows, np.array(features, dtype=np.float64), strict=True)
    assert rows.observation_ids == ids
    assert rows.top_k == top_k


@pytest.mark.parametrize(
    "data",
    [
        {"observations": [{"features": NORMAL}, {"features": ANOMALOUS, "observation_id": "a"}]},
        {"observations": [{"features": [1, 2, 3]}], "top_k": 2},
        {"observations": [{"features": [0.0] * 8, "observation_id": None}], "top_k": None},
        {"observations": [{"features": []}]},  # the width is the predictor's to check
    ],
)
def test_ordinary_bodies_take_the_vectorised_path(data: Any) -> None:
    rows = _columnar_batch(data, SETTINGS)
    assert rows is not None
    assert isinstance(rows.rows, np.ndarray)
    assert rows.rows.shape[0] == len(data["observations"])


@pytest.mark.parametrize(
    "data",
    [
        {"observations": [{"features": {f"f{i}": 0.0 for i in range(8)}}]},  # by name
        {"observations": [{"features": [True]}]},
        {"observations": [{"features": [1.0, 2.0]}, {"features": [1.0]}]},  # ragged
        {"observations": [{"features": [2**60]}]},  # an integer beyond float64's exact range
        {"observations": [{"features": [1.5e150]}]},
        {"observations": [{"features": [1.0], "observation_id": "x" * 7}]},
        {"observations": [{"features": [1.0], "observation_id": ""}]},
        {"observations": [{"features": [1.0]}], "top_k": True},
        {"observations": [{"features": [1.0], "other": 1}]},
        {"observations": []},
        {"features": [1.0]},
    ],
)
def test_anything_else_is_left_to_the_model(data: Any) -> None:
    assert _columnar_batch(data, SETTINGS) is None


async def test_both_paths_give_the_same_answers(client: httpx.AsyncClient) -> None:
    """Features as arrays (vectorised) and keyed by name (the model's path): one answer."""
    rows = [[0.1 * i + j for j in range(8)] for i in range(20)]
    by_name = {"observations": [{"features": {f"f{j}": v for j, v in enumerate(r)}} for r in rows]}
    as_arrays = {
        "observations": [{"features": r, "observation_id": f"r{i}"} for i, r in enumerate(rows)]
    }
    slow = (await client.post("/predict/batch", json=by_name)).json()
    fast = (await client.post("/predict/batch", json=as_arrays)).json()
    assert [p["cached"] for p in fast["predictions"]] == [True] * 20
    for answer in (slow, fast):
        answer.pop("inference_ms")
        for prediction in answer["predictions"]:
            for field in ("observation_id", "inference_ms", "cached"):
                prediction.pop(field)
    assert fast == slow


@pytest.mark.parametrize(
    "chunks", [[b'{"a": [1, 2]}'], [b'{"a": ', b"", b"[1, 2]}"], [b"", b'{"a": [1, 2]}', b""]]
)
async def test_a_body_is_read_whole_in_any_chunks(chunks: list[bytes]) -> None:
    """``load_json`` reads every message of a body, as ``Request.body()`` does."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    assert await load_json(Request(_SCOPE, receive)) == {"a": [1, 2]}
    assert not messages


async def test_a_client_that_leaves_mid_body_is_a_disconnect() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    with pytest.raises(ClientDisconnect):
        await load_json(Request(_SCOPE, receive))


_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/predict",
    "headers": [(b"content-type", b"application/json")],
}
