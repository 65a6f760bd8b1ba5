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
from anomaly_api.service.reloader import ModelReloader
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
    reloader: ModelReloader


def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.state.runtime
    return runtime


async def get_settings_dep(request: Request) -> Settings:
    """The settings this app was built with."""
    return _settings(request)


async def get_runtime(request: Request) -> ServiceRuntime:
    """The service's resources (cache, current model)."""
    return _runtime(request)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]

# The prediction dependencies read the state directly rather than through the two above:
# each nested dependency costs FastAPI a solve on every request of the hot path.


async def get_predictor(request: Request) -> Predictor:
    """The current model's predictor; 503 (``ModelNotReadyError``) when none is loaded."""
    return _runtime(request).require_predictor()


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_predict_body(request: Request) -> PredictRequest:
    """The validated ``/predict`` body."""
    return await parse_predict_request(request, _settings(request))


async def get_batch_body(request: Request) -> PredictBatchRequest:
    """The validated ``/predict/batch`` body."""
    return await parse_batch_request(request, _settings(request))


PredictBody = Annotated[PredictRequest, Depends(get_predict_body)]
PredictBatchBody = Annotated[PredictBatchRequest, Depends(get_batch_body)]
