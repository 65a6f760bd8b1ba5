"""Streams of readings: stateless ``POST /predict/window`` and stateful ``/streams/{stream_id}``.

The routes parse bodies and hand them to ``StreamPlane`` (``anomaly_api.service.streamplane``);
every status comes from ``ERROR_TABLE``. Answers are the service's dataclasses written with
orjson, as for ``/predict``; the response models are generated from the same dataclasses.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from anomaly_api.api.body import load_json, validate_body
from anomaly_api.api.deps import MetricsDep, StreamPlaneDep, ready_streamplane
from anomaly_api.api.openapi import ERROR_RESPONSES, json_request_body
from anomaly_api.api.schemas import (
    ErrorResponse,
    FeedbackRequest,
    StreamEventResponse,
    StreamEventsResponse,
    StreamListResponse,
    StreamReadingsRequest,
    StreamReadingsResponse,
    StreamScoresResponse,
    StreamStateResponse,
    WindowRequest,
    WindowResponse,
)
from anomaly_api.api.security import CallerDep
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.streamplane import StreamPlane
from anomaly_api.service.streams import STREAM_ID_PATTERN

EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9]{1,12}$"
MAX_EVENTS_PAGE = 100
MAX_STREAMS_PAGE = 500
MAX_SCORES = 2000
ScoresLimit = Annotated[
    int, Query(ge=1, le=MAX_SCORES, description="The newest this many scores at most.")
]
StreamsLimit = Annotated[int, Query(ge=1, le=MAX_STREAMS_PAGE, description="Streams per page.")]
StreamsAfter = Annotated[
    str | None,
    Query(
        pattern=STREAM_ID_PATTERN,
        description="A stream id: list the streams whose ids sort after it (`next_after`).",
    ),
]
"""The query parameters of the stream listing and the scores (also of a named model's)."""

window_router = APIRouter(prefix="/predict", tags=["streams"])
router = APIRouter(prefix="/streams", tags=["streams"])

_STREAM_ERRORS: dict[int | str, dict[str, Any]] = ERROR_RESPONSES | {
    404: {"model": ErrorResponse, "description": "No such stream (or it has expired)."},
    409: {"model": ErrorResponse, "description": "A duplicate or out-of-order timestamp."},
    429: {"model": ErrorResponse, "description": "The stream store is full (see Retry-After)."},
}

_T0 = "2026-11-29T12:00:00Z"
_WINDOW_EXAMPLES: dict[str, Any] = {
    "three_readings": {
        "summary": "Three readings of one stream, answer the last",
        "value": {
            "timestamps": ["2026-11-29T12:00:00Z", "2026-11-29T12:05:00Z", "2026-11-29T12:10:00Z"],
            "readings": [[0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]] * 3,
            "mode": "last",
        },
    }
}
_READINGS_EXAMPLES: dict[str, Any] = {
    "one_reading": {
        "summary": "One new reading",
        "value": {"timestamps": [_T0], "readings": [[0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]]},
    }
}

_FEEDBACK_EXAMPLES: dict[str, Any] = {
    "false_alarm": {
        "summary": "Not a fault",
        "value": {"label": "false_alarm", "note": "valve test, see the shift log"},
    }
}


def _json(content: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


@window_router.post(
    "/window",
    response_model=WindowResponse,
    responses=_STREAM_ERRORS,
    openapi_extra=json_request_body(WindowRequest, _WINDOW_EXAMPLES),
)
async def predict_window(request: Request) -> Response:
    """Score the last readings of one stream (Azure `detect-last` style), without state.

    Fewer readings than the model's window are answered, marked `warming_up`.
    """
    streamplane, predictor = ready_streamplane(request)
    return await answer_window(streamplane, predictor, request)


async def answer_window(
    streamplane: StreamPlane, predictor: Predictor, request: Request
) -> Response:
    """``/predict/window``'s answer to the request's body (any model's route too)."""
    body = validate_body(WindowRequest, await load_json(request))
    policy = None if body.alarm_policy is None else body.alarm_policy.policy()
    answer = await streamplane.window(
        body.timestamps,
        body.readings,
        mode=body.mode,
        top_k=body.top_k,
        alarm_policy=policy,
        predictor=predictor,
    )
    return _json(answer)


@router.post(
    "/{stream_id}/readings",
    response_model=StreamReadingsResponse,
    responses=_STREAM_ERRORS,
    openapi_extra=json_request_body(StreamReadingsRequest, _READINGS_EXAMPLES),
)
async def append_readings(stream_id: str, request: Request) -> Response:
    """Append one reading (or a few) to a stream and answer each from the stream's window."""
    streamplane, predictor = ready_streamplane(request)
    return await answer_readings(streamplane, predictor, stream_id, request)


async def answer_readings(
    streamplane: StreamPlane, predictor: Predictor, stream_id: str, request: Request
) -> Response:
    """``/streams/{stream_id}/readings``' answer to the request's body (any model's too)."""
    body = validate_body(StreamReadingsRequest, await load_json(request))
    policy = None if body.alarm_policy is None else body.alarm_policy.policy()
    answer = await streamplane.append(
        stream_id,
        body.timestamps,
        body.readings,
        top_k=body.top_k,
        alarm_policy=policy,
        predictor=predictor,
        adapt=body.adapt,
        follow=body.follow,
    )
    return _json(answer)


@router.get("/{stream_id}", response_model=StreamStateResponse, responses=_STREAM_ERRORS)
async def read_stream(stream_id: str, streamplane: StreamPlaneDep) -> Response:
    """A live stream's state: readings held, totals, first/last timestamp, expiry."""
    return _json(await streamplane.state(stream_id))


@router.get("/{stream_id}/events", response_model=StreamEventsResponse, responses=_STREAM_ERRORS)
async def list_events(
    stream_id: str,
    streamplane: StreamPlaneDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE, description="Events per page.")] = 20,
    before: Annotated[
        str | None,
        Query(
            pattern=EVENT_ID_PATTERN,
            description="An event id: list the events older than it (`next_before`).",
        ),
    ] = None,
) -> Response:
    """A stream's events (consecutive anomalous readings under its alarm policy), newest
    first, each with its top sensors and feedback."""
    return _json(await streamplane.events(stream_id, limit=limit, before=before))


@router.post(
    "/{stream_id}/events/{event_id}/feedback",
    response_model=StreamEventResponse,
    responses=_STREAM_ERRORS
    | {404: {"model": ErrorResponse, "description": "No such stream or event."}},
    openapi_extra=json_request_body(FeedbackRequest, _FEEDBACK_EXAMPLES),
)
async def send_feedback(
    stream_id: str, event_id: str, request: Request, caller: CallerDep, metrics: MetricsDep
) -> Response:
    """Label an event (`false_alarm`, `confirmed`, `expected`); open or closed. The same
    label again changes nothing; another label replaces it (both stay in the history)."""
    streamplane, _ = ready_streamplane(request)  # 503 before the body is read
    return await answer_feedback(
        streamplane, stream_id, event_id, request=request, caller=caller, metrics=metrics
    )


async def answer_feedback(
    streamplane: StreamPlane,
    stream_id: str,
    event_id: str,
    *,
    request: Request,
    caller: str,
    metrics: ServiceMetrics,
) -> Response:
    """The feedback route's answer (any model's too)."""
    body = validate_body(FeedbackRequest, await load_json(request))
    event, new = await streamplane.feedback(
        stream_id, event_id, label=body.label, note=body.note, by=caller
    )
    if new:
        metrics.observe_feedback(body.label)
    return _json(event)


@router.get("/{stream_id}/scores", response_model=StreamScoresResponse, responses=_STREAM_ERRORS)
async def read_scores(
    stream_id: str,
    streamplane: StreamPlaneDep,
    limit: ScoresLimit = MAX_SCORES,
) -> Response:
    """A live stream's recent scores, oldest first (at most `stream_recent_scores`): what a
    plot of the stream against its threshold needs."""
    return _json(await streamplane.recent(stream_id, limit=limit))


@router.get("", response_model=StreamListResponse, responses=ERROR_RESPONSES)
async def list_streams(
    streamplane: StreamPlaneDep,
    limit: StreamsLimit = 100,
    after: StreamsAfter = None,
) -> Response:
    """The live streams, ordered by id, a page at a time."""
    return _json(await streamplane.streams(limit=limit, after=after))


@router.delete("/{stream_id}", status_code=204, responses=_STREAM_ERRORS)
async def delete_stream(stream_id: str, streamplane: StreamPlaneDep) -> Response:
    """Reset a stream: its window is forgotten; the next reading starts it again."""
    await streamplane.reset(stream_id)
    return Response(status_code=204)


__all__ = ["router", "window_router"]
