"""One router per resource, collected into ``api_router``."""

from fastapi import APIRouter

from anomaly_api.api.routes import health, model, predict
from anomaly_api.api.security import ApiKeyDep, HealthKeyDep

api_router = APIRouter()
api_router.include_router(health.router, dependencies=[HealthKeyDep])
api_router.include_router(model.router, dependencies=[ApiKeyDep])
api_router.include_router(predict.router, dependencies=[ApiKeyDep])

__all__ = ["api_router"]
