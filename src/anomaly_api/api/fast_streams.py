"""The stream scoring routes on the fast path (``fast_path.FAST_ROUTES`` imports them).

One reading per request is how streams are fed, so routing and dependency solving weigh
on a stream reading as they did on ``/predict``. Each handler calls what FastAPI would
call, in its order: the router's client-key check, then the route's own function, which
checks readiness (503 before the body is read), reads the body and the path parameters'
values (a stream id or model name it does not accept is its own 404 or 422).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from anomaly_api.api.routes import models, streams
from anomaly_api.api.security import check_api_key

__all__ = ["STREAM_ROUTERS", "STREAM_ROUTES"]

_NAMED = "/models/{name}"
_READINGS = "/streams/{stream_id}/readings"


async def _append_readings(request: Request) -> Response:
    """``POST /streams/{stream_id}/readings``: the router's dependency, then the route."""
    await check_api_key(request)
    return await streams.append_readings(request.path_params["stream_id"], request)


async def _named_append_readings(request: Request) -> Response:
    """``POST /models/{name}/streams/{stream_id}/readings``: the router's dependency, then
    the route."""
    await check_api_key(request)
    params = request.path_params
    return await models.append_readings_to_model(params["name"], params["stream_id"], request)


async def _predict_window(request: Request) -> Response:
    """``POST /predict/window``: the router's dependency, then the route."""
    await check_api_key(request)
    return await streams.predict_window(request)


async def _named_predict_window(request: Request) -> Response:
    """``POST /models/{name}/predict/window``: the router's dependency, then the route."""
    await check_api_key(request)
    return await models.predict_window_with_model(request.path_params["name"], request)


STREAM_ROUTES = {
    ("POST", _READINGS): _append_readings,
    ("POST", f"{_NAMED}{_READINGS}"): _named_append_readings,
    ("POST", "/predict/window"): _predict_window,
    ("POST", f"{_NAMED}/predict/window"): _named_predict_window,
}
"""``(method, path template)`` -> the stream route served by the fast path."""

STREAM_ROUTERS: tuple[APIRouter, ...] = (streams.router, streams.window_router)
"""The routers declaring the unnamed routes of ``STREAM_ROUTES`` (``models.router`` the
named ones)."""
