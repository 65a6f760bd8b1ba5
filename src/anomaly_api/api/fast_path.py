"""The hot routes without the framework's per-request machinery: a pure ASGI middleware.

Starlette's routing and FastAPI's dependency solving cost about as much Python as the
prediction itself on a one-row ``/predict`` (docs/performance.md), and the hot routes
need neither: their dependencies are the client-key check and one body dependency. For
a method and path of ``FAST_ROUTES`` this middleware calls what FastAPI would call, in
FastAPI's order (the router's key check, the route's dependency, the route's function),
and renders what they raise with the one error renderer. It is the innermost middleware,
so the request id, access log, HTTP metrics, admission control and the size limits stay
around the routes as they are. The stream scoring routes come from ``fast_streams``. The
path parameters (``/models/{name}/predict``, ``/streams/{stream_id}/readings``) are taken
as Starlette's ``{name}`` takes them: one non-empty segment of the decoded path, any
characters but ``/`` (the route checks the value). Everything else
(other methods, other paths) goes to the FastAPI app, where these routes stay registered
for the OpenAPI document.

``tests/api/test_fast_path.py`` compares both paths byte for byte and checks that each
route's dependencies are still the ones resolved here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_api.api.deps import get_batch_call, get_predict_call
from anomaly_api.api.errors import EXPECTED_ERRORS, render_error
from anomaly_api.api.fast_streams import STREAM_ROUTERS, STREAM_ROUTES
from anomaly_api.api.routes import models, predict
from anomaly_api.api.security import check_api_key

__all__ = ["FAST_ROUTES", "FastPathMiddleware"]

FastHandler = Callable[[Request], Awaitable[Response]]
_MODELS = "/models/"
_NAMED = "/models/{name}"
_STREAMS = "/streams/"
_STREAM = "/streams/{stream_id}"


def _template(path: str) -> tuple[str, dict[str, str]]:
    """``path`` as a route template and its path parameters: ``/models/pumps/predict`` is
    ``/models/{name}/predict`` with ``name="pumps"``, ``/streams/s1/readings`` is
    ``/streams/{stream_id}/readings`` with ``stream_id="s1"`` (under a model's prefix too);
    any other path is itself."""
    params: dict[str, str] = {}
    named = ""
    if path.startswith(_MODELS):
        name, slash, rest = path[len(_MODELS) :].partition("/")
        if not name or not slash:
            return path, {}
        params["name"] = name
        named, path = _NAMED, f"/{rest}"
    if path.startswith(_STREAMS):
        stream_id, slash, rest = path[len(_STREAMS) :].partition("/")
        if stream_id and slash:
            params["stream_id"] = stream_id
            path = f"{_STREAM}/{rest}"
    return named + path, params


async def _predict(request: Request) -> Response:
    """``POST /predict``: the router's dependency, the route's, then the route."""
    await check_api_key(request)
    return await predict.create_prediction(await get_predict_call(request))


async def _predict_batch(request: Request) -> Response:
    """``POST /predict/batch``: the router's dependency, the route's, then the route."""
    await check_api_key(request)
    return await predict.create_batch_prediction(await get_batch_call(request), request)


async def _named_predict(request: Request) -> Response:
    """``POST /models/{name}/predict``: the router's dependency, then the route."""
    await check_api_key(request)
    return await models.predict_with_model(request.path_params["name"], request)


async def _named_predict_batch(request: Request) -> Response:
    """``POST /models/{name}/predict/batch``: the router's dependency, then the route."""
    await check_api_key(request)
    return await models.predict_batch_with_model(request.path_params["name"], request)


FAST_ROUTES: dict[tuple[str, str], FastHandler] = {
    ("POST", "/predict"): _predict,
    ("POST", "/predict/batch"): _predict_batch,
    ("POST", f"{_NAMED}/predict"): _named_predict,
    ("POST", f"{_NAMED}/predict/batch"): _named_predict_batch,
    **STREAM_ROUTES,
}
"""``(method, path template)`` -> the route served here; each must be a route of the app
too."""


_ROUTERS: tuple[APIRouter, ...] = (predict.router, models.router, *STREAM_ROUTERS)
"""The routers that declare the routes of ``FAST_ROUTES`` (for the OpenAPI document too)."""


def _served_route(method: str, path: str) -> APIRoute:
    """The declared route of ``method`` and ``path``: what FastAPI's router puts in the
    scope, by whose path template the HTTP metrics and the access log label a request."""
    for router in _ROUTERS:
        for route in router.routes:
            if (
                isinstance(route, APIRoute)
                and route.path == path
                and method in (route.methods or ())
            ):
                return route
    raise LookupError(f"the fast path serves {method} {path}, which no router declares")


class FastPathMiddleware:
    """Serves ``FAST_ROUTES`` itself; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = {key: (handler, _served_route(*key)) for key, handler in FAST_ROUTES.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a root path the router strips it first: those requests take the app's way.
        if scope["type"] == "http" and not scope.get("root_path"):
            template, params = _template(scope["path"])
            fast = self.routes.get((scope["method"], template))
            if fast is not None:
                handler, route = fast
                scope["route"] = route  # as the router sets it: the metrics' route label
                if params:
                    scope["path_params"] = params
                try:
                    response = await handler(Request(scope, receive))
                except EXPECTED_ERRORS as exc:
                    response = render_error(exc, scope)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
