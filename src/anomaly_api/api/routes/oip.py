"""Open Inference Protocol v2 (KServe v2, Triton, MLServer), REST and JSON, under ``/v2``.

The tensors are mapped in ``anomaly_api.api.oip_protocol``; scoring goes through the same
``DataPlane.predict`` as ``/predict`` (cache, metrics, request ids, limits, API keys).
Every error of these routes, whatever raised it (a dependency, the body, the service), is
caught by ``OipRoute`` and rendered by ``anomaly_api.api.errors.render_error``, which
writes the protocol's ``{"error": "..."}`` format under ``/v2``. The binary tensor
extension is not supported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from anomaly_api import __version__, registry
from anomaly_api.api.errors import OIP_PREFIX, MalformedJSONError, render_error
from anomaly_api.api.oip_protocol import (
    OipError,
    infer_response,
    model_metadata,
    parse_infer_request,
)
from anomaly_api.api.security import ApiKeyDep, HealthKeyDep
from anomaly_api.config import Settings
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.errors import ModelNotFoundError, ModelNotReadyError
from anomaly_api.service.fleet import ModelFleet
from anomaly_api.service.predictor import Predictor

__all__ = ["OipRoute", "router"]

_UNAVAILABLE = 503
_BINARY_HEADER = "inference-header-content-length"


class OipRoute(APIRoute):
    """A route whose errors (its dependencies' too) use the protocol's error format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # rendered, never re-raised: the protocol's format
                return render_error(exc, request.scope)

        return handle


# Not in the OpenAPI schema: the protocol is specified elsewhere (docs/open-inference-protocol.md).
router = APIRouter(prefix=OIP_PREFIX, route_class=OipRoute, include_in_schema=False)
health_router = APIRouter(prefix=OIP_PREFIX, route_class=OipRoute, include_in_schema=False)


def _json(content: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


def _dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.state.dataplane
    return dataplane


@asynccontextmanager
async def _model(
    request: Request, name: str, version: str | None
) -> AsyncIterator[tuple[DataPlane, Predictor]]:
    """The data plane and predictor serving ``name`` (at ``version``), held for the block:
    ``oip_model_name`` is the served model (503 while none is loaded, 404 for another
    version); any other name is a registered model, loaded on first use (404 if none)."""
    expected = _settings(request).oip_model_name
    if name == expected:
        dataplane = _dataplane(request)
        predictor = dataplane.require_ready()
        if version is not None and version != predictor.version:
            raise OipError(
                f"model {name!r} has no version {version!r}; the served version is "
                f"{predictor.version!r}",
                status=404,
            )
        yield dataplane, predictor
        return
    fleet: ModelFleet = request.state.fleet
    try:
        served = await fleet.acquire(name, version)
    except ModelNotFoundError as exc:
        raise OipError(
            f"{exc.message}; this server serves {expected!r} and the models "
            "POST /v2/repository/index lists",
            status=404,
        ) from None
    try:
        yield served.dataplane, served.predictor
    finally:
        fleet.release(served)


@health_router.get("/health/live")
async def server_live() -> Response:
    """The process is up."""
    return _json({"live": True})


@health_router.get("/health/ready")
async def server_ready(request: Request) -> Response:
    """200 ``{"ready": true}`` once the model is loaded, else 503 ``{"ready": false}``."""
    ready = _dataplane(request).runtime.predictor is not None
    return _json({"ready": ready}, 200 if ready else _UNAVAILABLE)


@router.get("")
async def server_metadata() -> Response:
    """The server's name, version and extensions (none)."""
    return _json({"name": "anomaly-api", "version": __version__, "extensions": []})


async def _metadata(request: Request, name: str, version: str | None) -> Response:
    async with _model(request, name, version) as (_, predictor):
        pass
    return _json(
        model_metadata(name, predictor.version, predictor.feature_names, predictor.detector_names)
    )


@router.get("/models/{name}")
async def model_metadata_route(request: Request, name: str) -> Response:
    """Inputs and outputs of the served model."""
    return await _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}")
async def model_version_metadata(request: Request, name: str, version: str) -> Response:
    """Inputs and outputs of the served model, if ``version`` is the served one."""
    return await _metadata(request, name, version)


async def _ready(request: Request, name: str, version: str | None) -> Response:
    try:
        async with _model(request, name, version):
            pass
    except ModelNotReadyError:  # no model loaded yet: not ready, in the protocol's words
        return _json({"name": name, "ready": False}, _UNAVAILABLE)
    return _json({"name": name, "ready": True})


@router.get("/models/{name}/ready")
async def model_ready(request: Request, name: str) -> Response:
    """200 ``{"name", "ready": true}`` when the model can serve, 503 when none is loaded."""
    return await _ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready")
async def model_version_ready(request: Request, name: str, version: str) -> Response:
    """As ``/v2/models/{name}/ready``, for the served version only."""
    return await _ready(request, name, version)


async def _read_json(request: Request) -> Any:
    """The body as strict JSON; the binary tensor extension is refused (400)."""
    body = await request.body()
    json_size = request.headers.get(_BINARY_HEADER)
    if json_size is not None and json_size.strip() != str(len(body)):
        raise OipError(
            "the binary tensor data extension is not supported: send tensors as JSON "
            "(tritonclient: binary_data=False on inputs and requested outputs)"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSONError(f"request body is not valid JSON: {exc}") from None


async def _infer(request: Request, name: str, version: str | None) -> Response:
    async with _model(request, name, version) as (dataplane, predictor):
        return await _infer_with(request, name, dataplane, predictor)


async def _infer_with(
    request: Request, name: str, dataplane: DataPlane, predictor: Predictor
) -> Response:
    if predictor.time_aware is not None:
        raise OipError(
            f"model {name!r} is time-aware: it scores readings in the context of a stream, "
            "not row by row; send its readings to POST /streams/{stream_id}/readings instead"
        )
    settings = _settings(request)
    parsed = parse_infer_request(
        await _read_json(request),
        predictor.feature_names,
        predictor.detector_names,
        max_rows=settings.max_batch_rows,
    )
    batch = await dataplane.predict(parsed.X, label_rows=False, predictor=predictor)
    body = infer_response(batch, name, parsed.id, parsed.outputs)
    return Response(body, media_type="application/json")


@router.post("/models/{name}/infer")
async def infer(request: Request, name: str) -> Response:
    """Score one ``[rows, n_features]`` tensor, or one ``[rows]`` tensor per feature."""
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer")
async def infer_version(request: Request, name: str, version: str) -> Response:
    """As ``/v2/models/{name}/infer``, for the served version only."""
    return await _infer(request, name, version)


@router.post("/repository/index")
async def repository_index(request: Request) -> Response:
    """Every model, as Triton's and MLServer's model-repository extension lists them:
    ``[{"name", "version", "state", "reason"}]``; ``{"ready": true}`` lists the loaded only.
    A registered model that is not loaded is ``UNAVAILABLE`` until its first request."""
    body = await request.body()
    ready_only = False
    if body.strip():
        data = await _read_json(request)
        if not isinstance(data, dict) or not isinstance(data.get("ready", False), bool):
            raise OipError("the body must be a JSON object whose 'ready' is true or false")
        ready_only = data.get("ready", False)
    settings = _settings(request)
    fleet: ModelFleet = request.state.fleet
    served = _dataplane(request).runtime.predictor
    entries = [
        {
            "name": settings.oip_model_name,
            "version": served.version if served else "",
            "state": "READY" if served else "UNAVAILABLE",
            "reason": "" if served else "no model is loaded",
        }
    ]
    registered = await asyncio.to_thread(fleet.listing.models)
    loaded_versions = fleet.loaded_versions()
    for name, aliases in registered:
        production = aliases.get(registry.PRODUCTION)
        if name == registry.DEFAULT_MODEL or production is None:
            continue  # ``default`` is listed above, as ``oip_model_name``
        loaded = production in loaded_versions.get(name, ())
        entries.append(
            {
                "name": name,
                "version": production,
                "state": "READY" if loaded else "UNAVAILABLE",
                "reason": "" if loaded else "unloaded (loads on its first request)",
            }
        )
    return _json([e for e in entries if e["state"] == "READY" or not ready_only])


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
async def unknown_endpoint(path: str) -> Response:
    """Anything else under ``/v2``: 404 in the protocol's format."""
    raise OipError(f"no Open Inference Protocol endpoint at /v2/{path}", status=404)


def include(parent: APIRouter) -> None:
    """Mount the protocol's routes on ``parent`` with their API-key rules."""
    parent.include_router(health_router, dependencies=[HealthKeyDep])
    parent.include_router(router, dependencies=[ApiKeyDep])
