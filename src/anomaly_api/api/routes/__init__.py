"""One router per resource, collected into ``api_router``."""

from fastapi import APIRouter

from anomaly_api.api.routes import health, model, predict

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(model.router)
api_router.include_router(predict.router)

__all__ = ["api_router"]
