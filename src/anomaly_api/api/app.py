"""``create_app(settings)``: the FastAPI application, its lifespan and its middleware.

Nothing heavy happens at import: the lifespan loads the model and opens the cache, and
closes the cache on shutdown. Each call builds an independent app, so tests can build
apps over temporary artifact directories.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from anomaly_api import __version__
from anomaly_api.api.deps import AppState
from anomaly_api.api.errors import install_error_handlers
from anomaly_api.api.middleware import BodySizeLimitMiddleware
from anomaly_api.api.openapi import install_openapi
from anomaly_api.api.operations import install_operations, operations_lifespan
from anomaly_api.api.routes import api_router
from anomaly_api.api.schemas import PredictBatchRequest, PredictRequest
from anomaly_api.config import Settings, get_settings
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.runtime import ServiceRuntime

__all__ = ["create_app"]

DESCRIPTION = (
    "Anomaly detection for multivariate sensor readings: an IsolationForest + "
    "LocalOutlierFactor + robust z-score ensemble; a reading is anomalous when at least "
    "2 of the 3 detectors agree."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (``get_settings()`` when omitted)."""
    settings = settings or get_settings()
    service_metrics = ServiceMetrics(anomaly_window=settings.metrics_anomaly_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        runtime = ServiceRuntime.start(settings, on_scored=service_metrics.observe_inference)
        try:
            async with operations_lifespan(runtime, settings, service_metrics) as reloader:
                yield {"settings": settings, "runtime": runtime, "reloader": reloader}
        finally:
            await runtime.close()

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the installed package,
    # so /docs and /redoc work without internet access.
    app = FastAPIOffline(
        title="anomaly-api",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    install_operations(app, settings, service_metrics)  # outermost middleware: request ids
    install_error_handlers(app)
    app.include_router(api_router)
    install_openapi(app, [PredictRequest, PredictBatchRequest])
    return app
