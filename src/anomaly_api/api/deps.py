"""Dependencies of the route handlers, each declared once as an ``Annotated`` alias.

They read the lifespan state (``AppState``): the settings the app was built with and
the ``ServiceRuntime`` holding the cache and the current model. They are ``async def``
on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, one hop each.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import Depends, Request

from anomaly_api.api.body import parse_batch_request, parse_predict_request
from anomaly_api.api.schemas import PredictBatchRequest, PredictRequest
from anomaly_api.config import Settings
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.runtime import ServiceRuntime

__all__ = [
    "AppState",
    "PredictBatchBody",
    "PredictBody",
    "PredictorDep",
    "RuntimeDep",
    "SettingsDep",
]


class AppState(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's state."""

    settings: Settings
    runtime: ServiceRuntime


async def get_settings_dep(request: Request) -> Settings:
    """The settings this app was built with."""
    settings: Settings = request.state.settings
    return settings


async def get_runtime(request: Request) -> ServiceRuntime:
    """The service's resources (cache, current model)."""
    runtime: ServiceRuntime = request.state.runtime
    return runtime


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_predictor(runtime: RuntimeDep) -> Predictor:
    """The current model's predictor; 503 (``ModelNotReadyError``) when none is loaded."""
    return runtime.require_predictor()


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_predict_body(request: Request, settings: SettingsDep) -> PredictRequest:
    """The validated ``/predict`` body."""
    return await parse_predict_request(request, settings)


async def get_batch_body(request: Request, settings: SettingsDep) -> PredictBatchRequest:
    """The validated ``/predict/batch`` body."""
    return await parse_batch_request(request, settings)


PredictBody = Annotated[PredictRequest, Depends(get_predict_body)]
PredictBatchBody = Annotated[PredictBatchRequest, Depends(get_batch_body)]
