"""The lifespan state (``AppState``) and the route dependencies that read it.

All request-time state is in the typed lifespan state: Starlette copies it into every
request's ``request.state``. Each dependency is declared once as an ``Annotated`` alias,
and is ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool,
one hop each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypedDict, TypeVar

from fastapi import Depends, Request

from anomaly_api.api.body import BatchRows, parse_batch_request, parse_predict_request
from anomaly_api.api.schemas import PredictRequest
from anomaly_api.api.security import KeyRing
from anomaly_api.config import Settings
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.fleet import ModelFleet
from anomaly_api.service.jobs import JobRunner
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.model_monitor import ModelMonitor
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.reloader import ModelReloader
from anomaly_api.service.revisions import RevisionChannel
from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.service.streamplane import StreamPlane

__all__ = [
    "AppState",
    "FleetDep",
    "JobsDep",
    "MetricsDep",
    "MonitorDep",
    "PredictBatchInput",
    "PredictCall",
    "PredictInput",
    "PredictorDep",
    "ReloaderDep",
    "RevisionsDep",
    "RuntimeDep",
    "SettingsDep",
    "StreamPlaneDep",
    "ready_streamplane",
]


class AppState(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's state."""

    settings: Settings
    runtime: ServiceRuntime
    dataplane: DataPlane
    reloader: ModelReloader
    metrics: ServiceMetrics
    keyring: KeyRing
    streamplane: StreamPlane
    monitor: ModelMonitor
    revisions: RevisionChannel | None
    """Announces and follows admin swaps across replicas; ``None`` without Redis."""
    jobs: JobRunner
    """The training jobs of this replica (and, with Redis, the job table of all)."""
    fleet: ModelFleet
    """Every named model: ``default`` (the runtime above) and those loaded on demand."""


def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def get_settings_dep(request: Request) -> Settings:
    """The settings this app was built with."""
    return _settings(request)


async def get_runtime(request: Request) -> ServiceRuntime:
    """The service's resources (cache, current model)."""
    runtime: ServiceRuntime = request.state.runtime
    return runtime


async def get_reloader(request: Request) -> ModelReloader:
    """The model reloader."""
    reloader: ModelReloader = request.state.reloader
    return reloader


async def get_revisions(request: Request) -> RevisionChannel | None:
    """The revision channel shared by the replicas (``None`` without Redis)."""
    revisions: RevisionChannel | None = request.state.revisions
    return revisions


async def get_jobs(request: Request) -> JobRunner:
    """The training job runner."""
    jobs: JobRunner = request.state.jobs
    return jobs


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics registry."""
    metrics: ServiceMetrics = request.state.metrics
    return metrics


async def get_monitor(request: Request) -> ModelMonitor:
    """The served model's monitor (drift, alarms)."""
    monitor: ModelMonitor = request.state.monitor
    return monitor


async def get_fleet(request: Request) -> ModelFleet:
    """The named models."""
    fleet: ModelFleet = request.state.fleet
    return fleet


async def get_predictor(request: Request) -> Predictor:
    """The current model's predictor; 503 (``ModelNotReadyError``) when none is loaded."""
    dataplane: DataPlane = request.state.dataplane
    return dataplane.require_ready()


async def get_streamplane(request: Request) -> StreamPlane:
    """The stream plane (windows and stateful streams)."""
    streamplane: StreamPlane = request.state.streamplane
    return streamplane


def ready_streamplane(request: Request) -> tuple[StreamPlane, Predictor]:
    """The stream plane and the model it scores this request with (503 before the body is
    read when none is loaded).

    Called by the stream scoring routes themselves rather than as a dependency: one node
    fewer for FastAPI to solve on every reading (see the note on the body dependencies)."""
    streamplane: StreamPlane = request.state.streamplane
    return streamplane, streamplane.dataplane.require_ready()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
ReloaderDep = Annotated[ModelReloader, Depends(get_reloader)]
RevisionsDep = Annotated[RevisionChannel | None, Depends(get_revisions)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
MonitorDep = Annotated[ModelMonitor, Depends(get_monitor)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
FleetDep = Annotated[ModelFleet, Depends(get_fleet)]
StreamPlaneDep = Annotated[StreamPlane, Depends(get_streamplane)]

# The body dependencies read the state directly rather than through ``SettingsDep``:
# FastAPI solves every dependency node anew on each request (its cost is in
# docs/performance.md), so the prediction routes get the data plane and their parsed body
# from one node.

BodyT = TypeVar("BodyT", PredictRequest, BatchRows)


@dataclass(slots=True)
class PredictCall(Generic[BodyT]):
    """What a prediction route needs: the data plane, the model it scores this request
    with (looked up once, before the body is read) and the validated body."""

    dataplane: DataPlane
    predictor: Predictor
    body: BodyT


async def get_predict_call(request: Request) -> PredictCall[PredictRequest]:
    """The data plane, its model (503 when none is loaded) and the ``/predict`` body."""
    dataplane: DataPlane = request.state.dataplane
    predictor = dataplane.require_ready()  # 503 before the body is read
    body = await parse_predict_request(request, _settings(request))
    return PredictCall(dataplane, predictor, body)


async def get_batch_call(request: Request) -> PredictCall[BatchRows]:
    """The data plane, its model (503 when none is loaded) and the ``/predict/batch`` body."""
    dataplane: DataPlane = request.state.dataplane
    predictor = dataplane.require_ready()  # 503 before the body is read
    body = await parse_batch_request(request, _settings(request))
    return PredictCall(dataplane, predictor, body)


PredictInput = Annotated[PredictCall[PredictRequest], Depends(get_predict_call)]
PredictBatchInput = Annotated[PredictCall[BatchRows], Depends(get_batch_call)]
