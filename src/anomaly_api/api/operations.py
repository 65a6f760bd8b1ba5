"""Wires the operations features into an app: metrics, request context, keys, reload.

``install_operations`` runs in ``create_app`` (middleware, routers, app-wide objects);
``operations_lifespan`` runs inside the app's lifespan, once the runtime exists (cache
counters, model-info gauge, the reloader and its SIGHUP handler). Keeping them here
leaves ``app.py`` a few lines longer, not a concept heavier.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from anomaly_api.api.header_limit import HeaderSizeLimitMiddleware
from anomaly_api.api.request_context import RequestContextMiddleware
from anomaly_api.api.routes import admin, metrics
from anomaly_api.api.security import KeyRing
from anomaly_api.config import Settings
from anomaly_api.service.cache import CacheCounters
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.reloader import ModelReloader, install_sighup_reload
from anomaly_api.service.runtime import ServiceRuntime

__all__ = ["install_operations", "operations_lifespan"]


def install_operations(app: FastAPI, settings: Settings, service_metrics: ServiceMetrics) -> None:
    """Header limit and the outermost middleware (request id, access log, HTTP metrics),
    API keys, the admin and /metrics routes.

    Call it after every other ``add_middleware``, so request ids reach all responses.
    """
    app.state.metrics = service_metrics
    app.state.keyring = KeyRing.from_settings(settings)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    app.add_middleware(HeaderSizeLimitMiddleware, max_header_bytes=settings.max_header_bytes)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=service_metrics,
        max_request_id_length=settings.request_id_max_length,
    )


@asynccontextmanager
async def operations_lifespan(
    runtime: ServiceRuntime, settings: Settings, service_metrics: ServiceMetrics
) -> AsyncIterator[ModelReloader]:
    """Export the runtime's cache and model, and yield the reloader (SIGHUP included)."""
    cache = runtime.cache
    service_metrics.track_cache(cache if isinstance(cache, CacheCounters) else None)
    predictor = runtime.predictor
    service_metrics.set_model_version(predictor.version if predictor else None)

    def on_result(version: str | None, ok: bool) -> None:
        service_metrics.observe_reload(ok)
        service_metrics.set_model_version(version)

    reloader = ModelReloader(runtime, runtime.build_predictor, on_result=on_result)
    uninstall = install_sighup_reload(reloader) if settings.reload_on_sighup else None
    try:
        yield reloader
    finally:
        if uninstall is not None:
            uninstall()
        service_metrics.track_cache(None)
