"""``create_app(settings)``: the FastAPI application, wired in this one place.

Nothing heavy happens at import: the lifespan loads the model and opens the cache, and
closes the cache on shutdown. Each call builds an independent app, so tests can build
apps over temporary artifact directories.

Request-time state lives in the lifespan state only (``AppState``, read through
``anomaly_api.api.deps``), never on ``app.state``. Middleware is listed below from the
innermost to the outermost (Starlette wraps each ``add_middleware`` around the previous
ones), so the request-id middleware, added last, sees every response, even the early
413, 431 and the overload 503.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline

from anomaly_api import __version__
from anomaly_api.api.admission import AdmissionControlMiddleware
from anomaly_api.api.body_limit import SizeLimitMiddleware
from anomaly_api.api.deps import AppState
from anomaly_api.api.errors import install_error_handlers
from anomaly_api.api.fast_path import FastPathMiddleware
from anomaly_api.api.openapi import install_openapi
from anomaly_api.api.request_context import RequestContextMiddleware, note_scored_batch
from anomaly_api.api.routes import api_router, docs_router
from anomaly_api.api.routes.training import is_training_upload
from anomaly_api.api.schemas import (
    FeedbackRequest,
    PredictBatchRequest,
    PredictRequest,
    StreamReadingsRequest,
    WindowRequest,
)
from anomaly_api.api.security import KeyRing
from anomaly_api.config import Settings, get_settings
from anomaly_api.registry import DEFAULT_MODEL
from anomaly_api.service.cache import BreakerState
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.fleet import ModelFleet, PlaneFactory, ServedModel
from anomaly_api.service.fleet_metrics import FleetMetrics
from anomaly_api.service.jobs import JobRunner, runner_from_settings
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.model_monitor import ModelMonitor, service_alarm_policy
from anomaly_api.service.reloader import ModelReloader, install_sighup_reload
from anomaly_api.service.revisions import RevisionChannel
from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.service.streamplane import StreamPlane
from anomaly_api.service.streams import RedisStreamStore, StreamStore

__all__ = ["create_app"]

_log = logging.getLogger(__name__)

DESCRIPTION = (
    "Anomaly detection for multivariate sensor readings: an ensemble of detectors "
    "(IsolationForest, LocalOutlierFactor, robust z-score and a PCA monitor to choose from; "
    "the first three by default); a reading is anomalous when at least `min_votes` of them "
    "agree (2 of the 3 by default, see `/model/info`). Every answer has a severity and "
    "each feature's share of the anomaly."
)


_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry off: the service reports through its Prometheus metrics and
JSON access log, and with it on FastAPI asks the global providers on every request whether
one was configured since."""


def _breaker_of(store: StreamStore) -> Callable[[], BreakerState]:
    """The stream store's circuit breaker state (with the prediction cache in the process,
    what tells Redis's health); always ``closed`` in process memory, where nothing can trip."""
    if isinstance(store, RedisStreamStore):
        return lambda: store.breaker_state
    return lambda: "closed"


def plane_factory(
    settings: Settings, metrics: ServiceMetrics, monitor: ModelMonitor, fleet: FleetMetrics
) -> PlaneFactory:
    """What builds each model's data and stream planes: the same hooks and limits for
    every model; only ``default`` feeds the service-wide drift monitor."""

    def build_planes(runtime: ServiceRuntime, name: str) -> tuple[DataPlane, StreamPlane]:
        dataplane = DataPlane(runtime, metrics)  # prediction + cache metrics
        dataplane.add_hook(note_scored_batch)  # rows, cache hits, version for the access log
        store = runtime.streams
        if name == DEFAULT_MODEL:
            dataplane.add_hook(monitor.observe)  # drift window + service-wide alarms
            metrics.track_streams_breaker(_breaker_of(store))
        dataplane.add_hook(lambda scored: fleet.observe_rows(name, scored.rows))
        streamplane = StreamPlane(
            dataplane,
            store,
            window_max_readings=settings.window_max_readings,
            stream_max_readings=settings.stream_max_readings,
            retry_after_s=settings.stream_retry_after_s,
            max_window=settings.stream_max_window,
            alarm_policy=service_alarm_policy(settings),  # the default of every stream
            on_alarms=monitor.stream_classes.count,  # anomaly_stream_alarms_total
            adaptation=settings.stream_adaptation,
            adaptation_memory=settings.stream_adaptation_memory,
        )
        return dataplane, streamplane

    return build_planes


def _job_runner(settings: Settings, metrics: ServiceMetrics) -> JobRunner:
    """The replica's training job runner, its counts in ``/metrics``."""
    jobs = runner_from_settings(settings)
    metrics.track_jobs(jobs.counts)
    return jobs


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (``get_settings()`` when omitted)."""
    settings = settings or get_settings()
    metrics = ServiceMetrics(anomaly_window=settings.metrics_anomaly_window)
    keyring = KeyRing.from_settings(settings)
    monitor = ModelMonitor(settings)  # drift, service alarms, expected rate
    metrics.register(monitor)  # statistics computed at scrape time
    fleet_metrics = FleetMetrics(metrics, max_models=settings.metrics_max_models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        runtime = ServiceRuntime.start(settings)
        await runtime.warm_up()  # with Redis: its connections are open before the first request

        build_planes = plane_factory(settings, metrics, monitor, fleet_metrics)
        dataplane, streamplane = build_planes(runtime, DEFAULT_MODEL)
        predictor = runtime.predictor
        metrics.set_model_version(predictor.version if predictor else None)
        monitor.attach(predictor)

        def on_reload(version: str | None, ok: bool) -> None:
            metrics.observe_reload(ok)
            metrics.set_model_version(version)
            if ok:
                monitor.attach(runtime.predictor)  # a new fit: a fresh drift window

        reloader = ModelReloader(runtime, runtime.build_predictor, on_result=on_reload)
        fleet = ModelFleet(
            settings,
            ServedModel(DEFAULT_MODEL, runtime, dataplane, streamplane),
            build_planes,
            reloader=reloader,
            metrics=fleet_metrics,
        )
        uninstall = install_sighup_reload(reloader) if settings.reload_on_sighup else None
        notice = keyring.admin_notice()
        if notice is not None:
            _log.warning(notice)
        revisions = None
        if settings.redis_url:  # every replica follows the admin swaps announced in Redis
            revisions = RevisionChannel.from_settings(
                settings,
                reloader,
                on_result=metrics.observe_revision,
                on_announce=metrics.observe_announcement,
            )
            revisions.on_model = fleet.follow_aliases
            revisions.start()
        jobs = _job_runner(settings, metrics)  # its heartbeat starts with its first job
        metrics.start_sharing()  # one of several workers: the collectors' values for all
        try:
            yield {
                "settings": settings,
                "runtime": runtime,
                "dataplane": dataplane,
                "reloader": reloader,
                "metrics": metrics,
                "keyring": keyring,
                "monitor": monitor,
                "streamplane": streamplane,
                "revisions": revisions,
                "jobs": jobs,
                "fleet": fleet,
            }
        finally:
            await jobs.close()
            await metrics.stop_sharing()
            if revisions is not None:
                await revisions.close()
            if uninstall is not None:
                uninstall()
            metrics.stop_tracking()
            await runtime.close()

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the installed package,
    # so /docs and /redoc work without internet access.
    app = FastAPIOffline(
        title="anomaly-api",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=_NO_TELEMETRY,
    )
    _install_middlewares(app, settings, metrics)
    install_error_handlers(app)
    app.include_router(api_router)
    install_openapi(
        app,
        [
            PredictRequest,
            PredictBatchRequest,
            WindowRequest,
            StreamReadingsRequest,
            FeedbackRequest,
        ],
        docs_router.routes,  # the served router has the hot routes first; docs read in order
    )
    return app


def _install_middlewares(app: FastAPI, settings: Settings, metrics: ServiceMetrics) -> None:
    """Innermost first. The request-id middleware must stay the last one added."""
    app.add_middleware(FastPathMiddleware)  # the hot routes, unrouted
    app.add_middleware(
        SizeLimitMiddleware,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        max_discard_bytes=settings.max_discard_bytes,
        max_discard_s=settings.max_discard_s,
        is_upload=is_training_upload,
        max_upload_bytes=settings.training_max_upload_bytes,
    )
    app.add_middleware(
        AdmissionControlMiddleware,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.overload_retry_after_s,
        on_shed=metrics.shed.inc,
    )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_request_id_length=settings.request_id_max_length,
    )
