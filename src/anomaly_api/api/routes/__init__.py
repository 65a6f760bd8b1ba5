"""One router per resource, collected into ``api_router``."""

from fastapi import APIRouter

from anomaly_api.api.routes import admin, health, metrics, model, monitoring, oip, predict, streams
from anomaly_api.api.security import ApiKeyDep, HealthKeyDep

api_router = APIRouter()
api_router.include_router(health.router, dependencies=[HealthKeyDep])
api_router.include_router(model.router, dependencies=[ApiKeyDep])
api_router.include_router(streams.window_router, dependencies=[ApiKeyDep])
api_router.include_router(predict.router, dependencies=[ApiKeyDep])
api_router.include_router(streams.router, dependencies=[ApiKeyDep])
api_router.include_router(monitoring.router, dependencies=[ApiKeyDep])
api_router.include_router(admin.router)  # its own admin-key dependency
api_router.include_router(metrics.router)  # its own metrics-key dependency
oip.include(api_router)  # /v2: the Open Inference Protocol, in its own error format

__all__ = ["api_router"]
