"""``GET /model/info``: the served model version and its provenance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from anomaly_api.api.deps import PredictorDep, SettingsDep
from anomaly_api.api.openapi import ERROR_RESPONSES
from anomaly_api.api.schemas import ModelInfoResponse, model_info

router = APIRouter(prefix="/model", tags=["model"])


@router.get("/info", response_model=ModelInfoResponse, responses={503: ERROR_RESPONSES[503]})
async def read_model_info(predictor: PredictorDep, settings: SettingsDep) -> dict[str, Any]:
    """Version, features with training statistics, detectors and thresholds, metrics."""
    return model_info(predictor.manifest, settings.inference_backend)
