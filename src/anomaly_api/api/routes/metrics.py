"""``GET /metrics``: the app's Prometheus registry in text format."""

from __future__ import annotations

from fastapi import APIRouter, Response

from anomaly_api.api.deps import MetricsDep
from anomaly_api.api.security import MetricsKeyDep
from anomaly_api.service.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"], dependencies=[MetricsKeyDep])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def read_metrics(metrics: MetricsDep) -> Response:
    """Request, prediction, model and cache metrics of this process."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
