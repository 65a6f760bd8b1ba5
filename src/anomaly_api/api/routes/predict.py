"""``POST /predict`` and ``POST /predict/batch``: HTTP in, ``Predictor`` out, nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from anomaly_api.api.deps import PredictBatchBody, PredictBody, PredictorDep
from anomaly_api.api.openapi import ERROR_RESPONSES, json_request_body
from anomaly_api.api.schemas import (
    ANOMALOUS_FEATURES,
    EXAMPLE_OBSERVATION_ID,
    NORMAL_FEATURES,
    DetectorVerdict,
    PredictBatchRequest,
    PredictBatchResponse,
    PredictRequest,
    PredictResponse,
)
from anomaly_api.service.prediction import Prediction
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
    }
}


def _new_observation_id() -> str:
    return uuid.uuid4().hex


def _responses(
    predictor: Predictor,
    requests: Sequence[PredictRequest],
    predictions: Sequence[Prediction],
    inference_ms: float,
) -> list[PredictResponse]:
    names = predictor.detector_names
    thresholds = predictor.thresholds
    return [
        PredictResponse(
            observation_id=request.observation_id or _new_observation_id(),
            is_anomaly=prediction.is_anomaly,
            anomaly_score=prediction.anomaly_score,
            confidence=prediction.confidence,
            model_version=predictor.version,
            inference_ms=inference_ms,
            detectors={
                name: DetectorVerdict(score=score, threshold=threshold, vote=vote)
                for name, score, threshold, vote in zip(
                    names, prediction.scores, thresholds, prediction.votes, strict=True
                )
            },
            cached=prediction.cached,
        )
        for request, prediction in zip(requests, predictions, strict=True)
    ]


@router.post(
    "",
    responses=ERROR_RESPONSES,
    openapi_extra=json_request_body(PredictRequest, _PREDICT_EXAMPLES),
)
async def create_prediction(predictor: PredictorDep, body: PredictBody) -> PredictResponse:
    """Score one reading: the ensemble's decision, score, confidence and each detector's vote."""
    started = time.perf_counter()
    predictions = await predictor.predict([body.features])
    inference_ms = (time.perf_counter() - started) * 1000.0
    return _responses(predictor, [body], predictions, inference_ms)[0]


@router.post(
    "/batch",
    responses=ERROR_RESPONSES,
    openapi_extra=json_request_body(PredictBatchRequest, _BATCH_EXAMPLES),
)
async def create_batch_prediction(
    predictor: PredictorDep, body: PredictBatchBody
) -> PredictBatchResponse:
    """Score 1 to `max_batch_rows` readings in one vectorised model call."""
    started = time.perf_counter()
    observations = body.observations
    predictions = await predictor.predict([o.features for o in observations], label_rows=True)
    inference_ms = (time.perf_counter() - started) * 1000.0
    return PredictBatchResponse(
        predictions=_responses(predictor, observations, predictions, inference_ms),
        n_anomalies=sum(p.is_anomaly for p in predictions),
        model_version=predictor.version,
        inference_ms=inference_ms,
    )
