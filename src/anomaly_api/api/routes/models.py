"""Named models: ``/models`` lists them, ``/models/{name}/...`` serves each, and the admin
routes move their aliases.

The scoring routes come first (FastAPI tries routes in order on every request), then the
reads of the registry. Every scoring route is its single-model route's handler over the
named model's planes, held (``ModelFleet.lease``) from before the body is read until the
answer is built, so the model is never unloaded under a request. ``default`` answers
exactly as ``/predict``. The registry's files are read and written in a worker thread,
never on the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from anomaly_api import registry
from anomaly_api.api.body import parse_batch_request, parse_predict_request
from anomaly_api.api.deps import FleetDep, MetricsDep, RevisionsDep, SettingsDep
from anomaly_api.api.openapi import ERROR_RESPONSES
from anomaly_api.api.routes.predict import answer_batch, answer_prediction
from anomaly_api.api.routes.streams import (
    EVENT_ID_PATTERN,
    MAX_EVENTS_PAGE,
    MAX_SCORES,
    ScoresLimit,
    StreamsAfter,
    StreamsLimit,
    answer_feedback,
    answer_readings,
    answer_window,
)
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.api.security import AdminKeyDep, CallerDep
from anomaly_api.artifacts import ArtifactError, ArtifactNotFoundError
from anomaly_api.service.errors import (
    InvalidInputError,
    ModelConflictError,
    ModelNotFoundError,
)
from anomaly_api.service.fleet import ModelFleet, checked_name
from anomaly_api.service.revisions import RevisionChannel, announce_model

router = APIRouter(prefix="/models", tags=["models"])
admin_router = APIRouter(prefix="/models", tags=["models"], dependencies=[AdminKeyDep])

_MODEL_ERRORS: dict[int | str, dict[str, Any]] = ERROR_RESPONSES | {
    404: {"model": ErrorResponse, "description": "No such model (or stream, alias, version)."},
}


def _json(content: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


async def _in_registry(call: Any, *args: Any) -> Any:
    """Run a registry call in a worker thread, its errors as the service's."""
    try:
        return await asyncio.to_thread(call, *args)
    except registry.RegistryConflictError as exc:
        raise ModelConflictError(str(exc)) from None
    except ArtifactNotFoundError as exc:
        raise ModelNotFoundError(str(exc)) from None
    except ArtifactError as exc:
        raise InvalidInputError(str(exc)) from None
    except ValueError as exc:
        raise ModelNotFoundError(str(exc)) from None


# ---------------------------------------------------------------------- serving
# The scoring routes read the fleet from the request's state rather than through
# ``FleetDep``: FastAPI solves every dependency node anew on each request.


def _fleet(request: Request) -> ModelFleet:
    fleet: ModelFleet = request.state.fleet
    return fleet


@router.post("/{name}/predict", responses=_MODEL_ERRORS)
async def predict_with_model(name: str, request: Request) -> Response:
    """As `POST /predict`, scored by model `name`'s production version."""
    async with _fleet(request).lease(name) as served:
        predictor = served.predictor
        body = await parse_predict_request(request, request.state.settings)
        return await answer_prediction(served.dataplane, predictor, body)


@router.post("/{name}/predict/batch", responses=_MODEL_ERRORS)
async def predict_batch_with_model(name: str, request: Request) -> Response:
    """As `POST /predict/batch`, scored by model `name`'s production version."""
    async with _fleet(request).lease(name) as served:
        predictor = served.predictor
        body = await parse_batch_request(request, request.state.settings)
        return await answer_batch(served.dataplane, predictor, body, request, model_name=name)


@router.post("/{name}/predict/window", responses=_MODEL_ERRORS)
async def predict_window_with_model(name: str, request: Request) -> Response:
    """As `POST /predict/window`, scored by model `name`."""
    async with _fleet(request).lease(name) as served:
        return await answer_window(served.streamplane, served.predictor, request)


@router.post("/{name}/streams/{stream_id}/readings", responses=_MODEL_ERRORS)
async def append_readings_to_model(name: str, stream_id: str, request: Request) -> Response:
    """As `POST /streams/{stream_id}/readings`; the stream belongs to model `name` (the
    same id under another model is another stream)."""
    async with _fleet(request).lease(name) as served:
        return await answer_readings(served.streamplane, served.predictor, stream_id, request)


@router.get("/{name}/streams/{stream_id}", responses=_MODEL_ERRORS)
async def read_model_stream(name: str, stream_id: str, fleet: FleetDep) -> Response:
    """As `GET /streams/{stream_id}`, for model `name`'s stream."""
    async with fleet.lease(name) as served:
        return _json(await served.streamplane.state(stream_id))


@router.get("/{name}/streams", responses=_MODEL_ERRORS)
async def list_model_streams(
    name: str, fleet: FleetDep, limit: StreamsLimit = 100, after: StreamsAfter = None
) -> Response:
    """As `GET /streams`, model `name`'s live streams."""
    async with fleet.lease(name) as served:
        return _json(await served.streamplane.streams(limit=limit, after=after))


@router.get("/{name}/streams/{stream_id}/scores", responses=_MODEL_ERRORS)
async def read_model_stream_scores(
    name: str, stream_id: str, fleet: FleetDep, limit: ScoresLimit = MAX_SCORES
) -> Response:
    """As `GET /streams/{stream_id}/scores`, for model `name`'s stream."""
    async with fleet.lease(name) as served:
        return _json(await served.streamplane.recent(stream_id, limit=limit))


@router.get("/{name}/streams/{stream_id}/events", responses=_MODEL_ERRORS)
async def list_model_stream_events(
    name: str,
    stream_id: str,
    fleet: FleetDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 20,
    before: Annotated[str | None, Query(pattern=EVENT_ID_PATTERN)] = None,
) -> Response:
    """As `GET /streams/{stream_id}/events`, for model `name`'s stream."""
    async with fleet.lease(name) as served:
        return _json(await served.streamplane.events(stream_id, limit=limit, before=before))


@router.post("/{name}/streams/{stream_id}/events/{event_id}/feedback", responses=_MODEL_ERRORS)
async def send_model_stream_feedback(
    name: str,
    stream_id: str,
    *,
    event_id: str,
    request: Request,
    caller: CallerDep,
    metrics: MetricsDep,
    fleet: FleetDep,
) -> Response:
    """As `POST /streams/{stream_id}/events/{event_id}/feedback`, for model `name`'s stream."""
    async with fleet.lease(name) as served:
        return await answer_feedback(
            served.streamplane,
            stream_id,
            event_id,
            request=request,
            caller=caller,
            metrics=metrics,
        )


@router.delete("/{name}/streams/{stream_id}", status_code=204, responses=_MODEL_ERRORS)
async def delete_model_stream(name: str, stream_id: str, fleet: FleetDep) -> Response:
    """As `DELETE /streams/{stream_id}`, for model `name`'s stream."""
    async with fleet.lease(name) as served:
        await served.streamplane.reset(stream_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------- reading


@router.get("", responses=_MODEL_ERRORS)
async def list_models(fleet: FleetDep) -> Response:
    """Every registered model: its aliases and the versions of it loaded now."""
    registered = await _in_registry(fleet.listing.models)
    loaded = fleet.loaded_versions()
    models = [
        {
            "name": name,
            "aliases": dict(sorted(aliases.items())),
            "loaded_versions": loaded.get(name, []),
        }
        for name, aliases in registered
    ]
    return _json({"models": models})


@router.get("/{name}", responses=_MODEL_ERRORS)
async def read_model(name: str, settings: SettingsDep, fleet: FleetDep) -> Response:
    """A model's versions (kind, features, thresholds, held-out F1), aliases and history."""
    summary = await _in_registry(registry.model_summary, settings.artifacts_dir, checked_name(name))
    summary["loaded_versions"] = fleet.loaded(name)
    return _json(summary)


# ---------------------------------------------------------------------- admin


class AliasRequest(BaseModel):
    """Where to point an alias."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="A version.")


async def _moved(
    fleet: ModelFleet, revisions: RevisionChannel | None, name: str, version: str
) -> dict[str, Any]:
    """This replica serves ``name``'s new production version; tell the others."""
    await fleet.follow_aliases(name)
    result = await announce_model(revisions, name, version)
    return {"announced": result.sent, "announcement": result.detail}


@admin_router.post("/{name}/aliases/{alias}", responses=_MODEL_ERRORS)
async def set_model_alias(
    name: str,
    alias: str,
    *,
    body: AliasRequest,
    settings: SettingsDep,
    fleet: FleetDep,
    revisions: RevisionsDep,
) -> Response:
    """Point `alias` of model `name` at `version` (`production` is the one served)."""
    checked_name(name)
    try:
        registry.validate_model_name(alias)
    except ValueError as exc:
        raise InvalidInputError(f"alias: {exc}") from None
    previous = await _in_registry(
        registry.set_alias, settings.artifacts_dir, name, alias, body.version
    )
    answer: dict[str, Any] = {
        "model": name,
        "alias": alias,
        "version": body.version,
        "previous": previous,
    }
    if alias == registry.PRODUCTION:
        answer |= await _moved(fleet, revisions, name, body.version)
    return _json(answer)


@admin_router.post("/{name}/rollback", responses=_MODEL_ERRORS)
async def rollback_model(
    name: str, settings: SettingsDep, fleet: FleetDep, revisions: RevisionsDep
) -> Response:
    """Move `production` back to the version it named before (409 when there is none)."""
    checked_name(name)
    previous, version = await _in_registry(registry.rollback, settings.artifacts_dir, name)
    answer = {"model": name, "alias": registry.PRODUCTION, "version": version, "previous": previous}
    return _json(answer | await _moved(fleet, revisions, name, version))


@admin_router.delete("/{name}/versions/{version}", status_code=204, responses=_MODEL_ERRORS)
async def delete_model_version(
    name: str, version: str, settings: SettingsDep, fleet: FleetDep
) -> Response:
    """Delete a version; 409 while an alias (or `LATEST`) points at it."""
    checked_name(name)
    await _in_registry(registry.delete_version, settings.artifacts_dir, name, version)
    fleet.forget_version(name, version)
    return Response(status_code=204)


__all__ = ["admin_router", "router"]
