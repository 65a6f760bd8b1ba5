"""Reading request bodies: content type, strict JSON, schema, and settings-driven limits.

Bodies are parsed here with orjson (strict RFC 8259) rather than by FastAPI, whose standard
``json`` reads the non-JSON tokens ``NaN`` and ``Infinity`` as floats; they are a 400
``invalid_json``. The Pydantic model then validates them. The size limit is enforced
earlier, by ``SizeLimitMiddleware``.

A ``/predict/batch`` body is first tried on a vectorised path (``_columnar_batch``): the
rows straight into one float64 matrix, checked per column. It accepts only bodies the
Pydantic model accepts, with the same values; anything else goes through the model, so
every error body is the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from anomaly_api.api.errors import (
    BatchSizeError,
    MalformedJSONError,
    ObservationIdError,
    SchemaValidationError,
    UnsupportedMediaTypeError,
    dotted,
)
from anomaly_api.api.schemas import (
    MAX_ABS_FEATURE,
    Observation,
    PredictBatchRequest,
    PredictRequest,
)
from anomaly_api.config import Settings
from anomaly_api.service.predictor import FeatureRow

__all__ = [
    "BatchRows",
    "load_json",
    "parse_batch_request",
    "parse_predict_request",
    "validate_body",
]

ModelT = TypeVar("ModelT", bound=BaseModel)

_MAX_DETAILS = 20


def _content_type(scope: Scope) -> str | None:
    """The request's ``Content-Type`` (the first), as ``request.headers.get`` gives it,
    without building the headers object."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type: str = value.decode("latin-1")
            return content_type
    return None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _location(loc: tuple[int | str, ...]) -> list[int | str]:
    """``("observations", 2, "features", "array", 0)`` -> ``["observations", 2, "features", 0]``
    (the features union's tags are Pydantic's bookkeeping, not a place in the body)."""
    return [part for part in loc if part not in ("array", "object")]


def _schema_error(exc: ValidationError) -> SchemaValidationError:
    details: list[dict[str, Any]] = [
        {"loc": _location(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ][:_MAX_DETAILS]
    first = details[0]
    more = exc.error_count() - 1
    suffix = f" (and {more} more)" if more else ""
    return SchemaValidationError(f"{dotted(first['loc'])}: {first['msg']}{suffix}", details)


async def _read_body(request: Request) -> bytes:
    """The whole request body, as ``Request.body()`` reads it (``ClientDisconnect`` when the
    client leaves), without the async generator it reads through, which costs more than
    validating a one-row body. ``load_json`` is the one reader of request bodies."""
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def load_json(request: Request) -> Any:
    """The request body parsed as strict JSON; 415 or 400 errors for the wrong kind of body."""
    if not _is_json(_content_type(request.scope)):
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    body = await _read_body(request)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if b"NaN" in body or b"Infinity" in body:
            hint = " (NaN and Infinity are not valid JSON numbers)"
        raise MalformedJSONError(f"request body is not valid JSON: {exc}{hint}") from None


def validate_body(model: type[ModelT], data: Any) -> ModelT:
    """``data`` as ``model``, or a 422 error naming the offending fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def _check_observation_id(request: Observation, settings: Settings, where: str) -> None:
    oid = request.observation_id
    limit = settings.max_observation_id_length
    if oid is not None and len(oid) > limit:
        raise ObservationIdError(
            f"{where}observation_id is {len(oid)} characters long; the limit is {limit}"
        )


async def parse_predict_request(request: Request, settings: Settings) -> PredictRequest:
    """A ``/predict`` body, with its observation_id within the configured length."""
    parsed = validate_body(PredictRequest, await load_json(request))
    _check_observation_id(parsed, settings, "")
    return parsed


@dataclass(frozen=True, slots=True)
class BatchRows:
    """A valid ``/predict/batch`` body: its rows, their ids and ``top_k``."""

    rows: NDArray[np.float64] | list[FeatureRow]
    """One float64 matrix (the vectorised path) or each observation's features."""
    observation_ids: list[str | None]
    top_k: int | None


_BATCH_FIELDS = frozenset(PredictBatchRequest.model_fields)
_OBSERVATION_FIELDS = frozenset(Observation.model_fields)
_NUMBER_TYPES = frozenset({float, int})
_ID_TYPES = frozenset({str, type(None)})
_EXACT_INT = 2.0**53
"""Integers up to this magnitude convert to float64 exactly (as Pydantic converts them)."""


def _columnar_batch(data: Any, settings: Settings) -> BatchRows | None:
    """``data`` as ``BatchRows`` when it is a valid body whose features are all arrays of
    numbers; None for anything else (``parse_batch_request`` then validates it with the
    model, which names the error). Checks exactly what the model and
    ``_check_observation_id`` check, column by column."""
    fields = _batch_fields(data, settings.max_observation_id_length)
    if fields is None:
        return None
    features, ids, top_k = fields
    X = _number_matrix(features)
    return None if X is None else BatchRows(X, ids, top_k)


def _batch_fields(
    data: Any, max_id_length: int
) -> tuple[list[Any], list[str | None], int | None] | None:
    """The features, ids and ``top_k`` of a body of the model's shape, every id a string
    of 1 to ``max_id_length`` characters or null; None otherwise."""
    if type(data) is not dict or not data.keys() <= _BATCH_FIELDS:
        return None
    observations, top_k = data.get("observations"), data.get("top_k")
    if (
        type(observations) is not list
        or not observations
        or (top_k is not None and (type(top_k) is not int or top_k < 1))
        or set(map(type, observations)) != {dict}
        or not set().union(*observations) <= _OBSERVATION_FIELDS
    ):
        return None
    try:
        features = [observation["features"] for observation in observations]
    except KeyError:
        return None
    ids = [observation.get("observation_id") for observation in observations]
    if set(map(type, features)) != {list} or not set(map(type, ids)) <= _ID_TYPES:
        return None
    given = [oid for oid in ids if oid is not None]
    if given and not 1 <= min(map(len, given)) <= max(map(len, given)) <= max_id_length:
        return None
    return features, ids, top_k


def _number_matrix(features: list[list[Any]]) -> NDArray[np.float64] | None:
    """Rows of JSON numbers (``true`` is not one) of one length, each finite and within
    ``MAX_ABS_FEATURE``, as a float64 matrix; None otherwise."""
    kinds = set(map(type, chain.from_iterable(features)))
    if not kinds <= _NUMBER_TYPES:
        return None
    try:
        X = np.array(features, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged rows, huge integers
        return None
    magnitude = np.abs(X)
    if X.ndim != 2 or not (magnitude <= MAX_ABS_FEATURE).all():
        return None
    if int in kinds and (magnitude > _EXACT_INT).any():
        return None  # a large integer: the model compares it exactly, not as a float
    return X


async def parse_batch_request(request: Request, settings: Settings) -> BatchRows:
    """A ``/predict/batch`` body, within the configured batch cap and id length."""
    data = await load_json(request)
    rows = data.get("observations") if isinstance(data, dict) else None
    if isinstance(rows, list) and len(rows) > settings.max_batch_rows:
        # Refused before validating thousands of rows that would be thrown away.
        raise BatchSizeError(
            f"a batch holds at most {settings.max_batch_rows} observations, got {len(rows)}"
        )
    columnar = _columnar_batch(data, settings)
    if columnar is not None:
        return columnar
    parsed = validate_body(PredictBatchRequest, data)
    for index, observation in enumerate(parsed.observations):
        _check_observation_id(observation, settings, f"observations[{index}].")
    return BatchRows(
        [o.features for o in parsed.observations],
        [o.observation_id for o in parsed.observations],
        parsed.top_k,
    )
