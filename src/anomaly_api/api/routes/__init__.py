"""One router per resource, collected into ``api_router`` (served) and ``docs_router``
(the same routes in reading order, for the OpenAPI document).

``api_router`` puts ``/predict`` and ``/predict/batch`` first, then ``/streams``: FastAPI
tries the included routers in order on every request, so the hot routes are matched
before any other is tried (docs/performance.md). No two routers share a path, so
the order decides nothing else, and the OpenAPI document keeps the reading order below.
"""

from fastapi import APIRouter
from fastapi.params import Depends

from anomaly_api.api.routes import (
    admin,
    health,
    metrics,
    model,
    models,
    monitoring,
    oip,
    predict,
    streams,
    training,
    ui,
)
from anomaly_api.api.security import ApiKeyDep, HealthKeyDep

_READING_ORDER: list[tuple[APIRouter, list[Depends]]] = [
    (health.router, [HealthKeyDep]),
    (model.router, [ApiKeyDep]),
    (streams.window_router, [ApiKeyDep]),
    (predict.router, [ApiKeyDep]),
    (streams.router, [ApiKeyDep]),
    (models.router, [ApiKeyDep]),
    (models.admin_router, []),  # its own admin-key dependency
    (monitoring.router, [ApiKeyDep]),
    (admin.router, []),  # its own admin-key dependency
    (training.router, []),  # admin-key too
    (metrics.router, []),  # its own metrics-key dependency
    (ui.router, []),  # public static page; it calls the API with the operator's key
]


def _collect(order: list[tuple[APIRouter, list[Depends]]]) -> APIRouter:
    parent = APIRouter()
    for child, dependencies in order:
        parent.include_router(child, dependencies=dependencies)
    oip.include(parent)  # /v2: the Open Inference Protocol, in its own error format
    return parent


_SERVING_FIRST: list[APIRouter] = [predict.router, streams.router]
"""Tried before the others, in this order: ``/predict`` (and ``/predict/batch``), then the
stateful stream routes (``POST /streams/{id}/readings`` carries one reading per request)."""


def _serving_rank(entry: tuple[APIRouter, list[Depends]]) -> int:
    hot = [i for i, router in enumerate(_SERVING_FIRST) if router is entry[0]]
    return hot[0] if hot else len(_SERVING_FIRST)


api_router = _collect(sorted(_READING_ORDER, key=_serving_rank))  # stable: the rest in order
docs_router = _collect(_READING_ORDER)

__all__ = ["api_router", "docs_router"]
