"""OpenAPI pieces for the bodies the API parses itself (see ``anomaly_api.api.body``).

FastAPI documents only bodies it parses, so the prediction routes declare theirs with
``json_request_body`` and ``install_openapi`` adds the request models to the schema's
components, where those references point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from anomaly_api.api.schemas import ErrorResponse

__all__ = ["ERROR_RESPONSES", "install_openapi", "json_request_body"]

_REF = "#/components/schemas/{model}"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "The body is not valid JSON."),
        (413, "The body is larger than the configured limit."),
        (415, "The body is not declared as application/json."),
        (422, "The body does not match the schema or the model's features."),
        (503, "No model is loaded."),
    )
}


def json_request_body(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model`` with named examples."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    content = {"application/json": {"schema": schema, "examples": examples}}
    return {"requestBody": {"required": True, "content": content}}


def install_openapi(
    app: FastAPI,
    request_models: Sequence[type[BaseModel]],
    routes: Sequence[BaseRoute] | None = None,
) -> None:
    """Make ``app.openapi()`` include ``request_models`` (and what they nest) as components;
    ``routes`` (default: the app's) are documented in their order."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=list(app.routes if routes is None else routes),
            )
            _, definitions = models_json_schema(
                [(model, "validation") for model in request_models], ref_template=_REF
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in definitions.get("$defs", {}).items():
                components.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
