"""``POST /predict`` and ``POST /predict/batch``: parsed rows in, ``DataPlane`` answers out.

The answers are written from the call's arrays (``ColumnarBatchAnswer``): the JSON orjson
gives for the service's answer dataclasses, without building them. The response models
are generated from the same dataclasses (``anomaly_api.api.schemas``), declared
(``response_model``) and documented, and the tests check every response against them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from anomaly_api.api.body import BatchRows
from anomaly_api.api.deps import PredictBatchInput, PredictInput
from anomaly_api.api.errors import NotAcceptableError, SchemaValidationError
from anomaly_api.api.negotiation import negotiate
from anomaly_api.api.oip_protocol import TENSORS_MEDIA_TYPE, tensors_response
from anomaly_api.api.openapi import ERROR_RESPONSES, json_request_body
from anomaly_api.api.request_context import current_request_id
from anomaly_api.api.schemas import (
    ANOMALOUS_FEATURES,
    EXAMPLE_OBSERVATION_ID,
    NORMAL_FEATURES,
    PredictBatchRequest,
    PredictBatchResponse,
    PredictRequest,
    PredictResponse,
)
from anomaly_api.config import Settings
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.predictor import Predictor

router = APIRouter(prefix="/predict", tags=["predict"])

_PREDICT_EXAMPLES: dict[str, Any] = {
    "normal": {
        "summary": "A normal reading",
        "value": {"features": NORMAL_FEATURES, "observation_id": EXAMPLE_OBSERVATION_ID},
    },
    "anomalous": {
        "summary": "An anomalous reading",
        "value": {"features": ANOMALOUS_FEATURES, "observation_id": EXAMPLE_OBSERVATION_ID},
    },
    "by_name": {
        "summary": "Features keyed by name (see /model/info for the names)",
        "value": {"features": {f"f{i}": v for i, v in enumerate(NORMAL_FEATURES)}},
    },
    "top_k": {
        "summary": "Only the 3 features that contribute most to the anomaly",
        "value": {"features": ANOMALOUS_FEATURES, "top_k": 3},
    },
}
_BATCH_EXAMPLES: dict[str, Any] = {
    "two_readings": {
        "summary": "A normal and an anomalous reading",
        "value": {
            "observations": [
                {"features": NORMAL_FEATURES, "observation_id": "sensor_42_t1234"},
                {"features": ANOMALOUS_FEATURES, "observation_id": "sensor_42_t1235"},
            ]
        },
    },
    "top_k": {
        "summary": "Each answer with only its 3 largest feature contributions",
        "value": {
            "observations": [
                {"features": NORMAL_FEATURES, "observation_id": "sensor_42_t1234"},
                {"features": ANOMALOUS_FEATURES, "observation_id": "sensor_42_t1235"},
            ],
            "top_k": 3,
        },
    },
}


_BATCH_MEDIA_TYPES = ("application/json", TENSORS_MEDIA_TYPE)
"""What ``/predict/batch`` answers in; the first is the default."""


def _checked_top_k(predictor: Predictor, top_k: int | None) -> int | None:
    """``top_k``, or a 422 like the schema's own when it exceeds the model's features
    (its lower bound is in the schema; the upper one depends on the loaded model). The
    one check of ``top_k``: the data plane trusts it."""
    n_features = predictor.n_features
    if top_k is not None and top_k > n_features:
        message = f"Input should be less than or equal to {n_features}"
        raise SchemaValidationError(
            f"top_k: {message}", [{"loc": ["top_k"], "msg": message, "type": "less_than_equal"}]
        )
    return top_k


@router.post(
    "",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=json_request_body(PredictRequest, _PREDICT_EXAMPLES),
)
async def create_prediction(call: PredictInput) -> Response:
    """Score one reading: the ensemble's decision, score, confidence, severity, each
    feature's contribution (`top_k` for only the largest) and each detector's vote."""
    return await answer_prediction(call.dataplane, call.predictor, call.body)


async def answer_prediction(
    dataplane: DataPlane, predictor: Predictor, body: PredictRequest
) -> Response:
    """``/predict``'s answer to ``body`` from ``predictor`` (any model's ``/predict`` too)."""
    top_k = _checked_top_k(predictor, body.top_k)
    batch = await dataplane.predict(
        [body.features],
        [body.observation_id],
        label_rows=False,
        top_k=top_k,
        predictor=predictor,
    )
    return Response(batch.answer_json(), media_type="application/json")


@router.post(
    "/batch",
    response_model=PredictBatchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=json_request_body(PredictBatchRequest, _BATCH_EXAMPLES),
)
async def create_batch_prediction(call: PredictBatchInput, request: Request) -> Response:
    """Score 1 to `max_batch_rows` readings in one vectorised model call.

    `Accept: application/vnd.anomaly-api.tensors+json` answers the same values as one
    Open Inference Protocol `$inference_response` (one tensor per field, every feature's
    contribution; see the API page); an `Accept` that allows neither form is a 406."""
    return await answer_batch(call.dataplane, call.predictor, call.body, request)


async def answer_batch(
    dataplane: DataPlane,
    predictor: Predictor,
    body: BatchRows,
    request: Request,
    model_name: str | None = None,
) -> Response:
    """``/predict/batch``'s answer to ``body`` from ``predictor``, in the negotiated media
    type (``model_name`` names the model in a tensors answer; the OIP name when None)."""
    media = negotiate(request.headers.get("accept"), _BATCH_MEDIA_TYPES)
    if media is None:
        raise NotAcceptableError(
            f"this route answers in {' or '.join(_BATCH_MEDIA_TYPES)}; the Accept header "
            "allows neither"
        )
    top_k = _checked_top_k(predictor, body.top_k)
    batch = await dataplane.predict(
        body.rows, body.observation_ids, top_k=top_k, predictor=predictor
    )
    if media == TENSORS_MEDIA_TYPE:
        settings: Settings = request.state.settings
        name = model_name or settings.oip_model_name
        content = tensors_response(batch, name, current_request_id())
        return Response(content, media_type=TENSORS_MEDIA_TYPE)
    return Response(batch.to_json(), media_type="application/json")
