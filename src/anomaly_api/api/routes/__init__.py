"""One router per resource, collected into ``api_router``."""

from fastapi import APIRouter

from anomaly_api.api.routes import admin, health, metrics, model, monitoring, predict
from anomaly_api.api.security import ApiKeyDep, HealthKeyDep

api_router = APIRouter()
api_router.include_router(health.router, dependencies=[HealthKeyDep])
api_router.include_router(model.router, dependencies=[ApiKeyDep])
api_router.include_router(predict.router, dependencies=[ApiKeyDep])
api_router.include_router(monitoring.router, dependencies=[ApiKeyDep])
api_router.include_router(admin.router)  # its own admin-key dependency
api_router.include_router(metrics.router)  # its own metrics-key dependency

__all__ = ["api_router"]
