"""``GET /model/info``: the served model version and its provenance."""

from __future__ import annotations

from fastapi import APIRouter

from anomaly_api.api.deps import PredictorDep, SettingsDep
from anomaly_api.api.openapi import ERROR_RESPONSES
from anomaly_api.api.schemas import ModelInfoResponse

router = APIRouter(prefix="/model", tags=["model"])


@router.get("/info", responses={503: ERROR_RESPONSES[503]})
async def read_model_info(predictor: PredictorDep, settings: SettingsDep) -> ModelInfoResponse:
    """Version, features with training statistics, detectors and thresholds, metrics."""
    manifest = predictor.manifest
    return ModelInfoResponse(
        version=manifest.version,
        created_at=manifest.created_at,
        n_features=len(manifest.feature_names),
        feature_names=manifest.feature_names,
        feature_stats=manifest.feature_stats,
        detectors=manifest.detectors,
        min_votes=manifest.min_votes,
        vote_rule=manifest.vote_rule,
        score_definition=manifest.score_definition,
        metrics=manifest.metrics,
        library_versions=manifest.library_versions,
        inference_backend=settings.inference_backend,
    )
