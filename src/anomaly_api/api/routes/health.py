"""``GET /health`` (full report), ``/health/live`` and ``/health/ready`` (for orchestrators)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from anomaly_api.api.deps import RevisionsDep, RuntimeDep
from anomaly_api.api.schemas import (
    CacheHealth,
    HealthResponse,
    LivenessResponse,
    ReadinessResponse,
    RevisionsHealth,
    StreamsHealth,
)

router = APIRouter(prefix="/health", tags=["health"])

_UNAVAILABLE = 503


@router.get(
    "",
    responses={_UNAVAILABLE: {"model": HealthResponse, "description": "No model is loaded."}},
)
async def read_health(
    runtime: RuntimeDep, revisions: RevisionsDep, response: Response
) -> HealthResponse:
    """Model, cache, streams, the revision channel (with Redis) and uptime; ``degraded``
    (still 200) while the cache is unreachable."""
    report = await runtime.health()
    if not report.model_loaded:
        response.status_code = _UNAVAILABLE
    return HealthResponse(
        status=report.status,
        model_loaded=report.model_loaded,
        model_version=report.model_version,
        cache=CacheHealth(backend=report.cache_backend, ok=report.cache_ok),
        streams=StreamsHealth(backend=report.streams_backend, ok=report.streams_ok),
        revisions=None
        if revisions is None
        else RevisionsHealth(
            channel=revisions.channel,
            subscribed=revisions.subscribed,
            unsent_version=None if revisions.pending is None else revisions.pending.version,
        ),
        uptime_s=report.uptime_s,
    )


@router.get("/live")
async def read_liveness() -> LivenessResponse:
    """The process is up; says nothing about the model."""
    return LivenessResponse()


@router.get(
    "/ready",
    responses={_UNAVAILABLE: {"model": ReadinessResponse, "description": "No model is loaded."}},
)
async def read_readiness(runtime: RuntimeDep, response: Response) -> ReadinessResponse:
    """200 once a model is loaded and predictions can be served, else 503."""
    predictor = runtime.predictor
    if predictor is None:
        response.status_code = _UNAVAILABLE
    return ReadinessResponse(
        ready=predictor is not None,
        model_version=None if predictor is None else predictor.version,
    )
