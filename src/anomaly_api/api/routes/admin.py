"""``POST /admin/reload``: load, verify and swap in a model version without downtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from anomaly_api.api.deps import ReloaderDep
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.api.security import AdminKeyDep

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminKeyDep])

_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class ReloadResponse(BaseModel):
    """A successful reload: the version served from now on."""

    reloaded: bool = True
    previous_version: str | None = Field(description="The version served before.")
    model_version: str = Field(description="The version served from now on.")
    load_ms: float = Field(description="Time to load and verify the new artifact.")


def _error(description: str) -> dict[str, object]:
    return {"model": ErrorResponse, "description": description}


@router.post(
    "/reload",
    responses={
        401: _error("An admin key is required and none was sent."),
        403: _error("The key sent is not an admin key."),
        404: _error("No such model version (or no LATEST pointer); the old model keeps serving."),
        409: _error("The artifact failed to load or verify; the old model keeps serving."),
    },
)
async def reload_model(
    reloader: ReloaderDep,
    version: Annotated[
        str | None,
        Query(
            pattern=_VERSION_PATTERN,
            description="Version to serve; the artifact directory's LATEST when omitted.",
        ),
    ] = None,
) -> ReloadResponse:
    """Load and verify the artifact first, then swap it in; requests in flight finish on the
    model they started with, and a failed load keeps the old model serving."""
    result = await reloader.reload(version)
    return ReloadResponse(
        previous_version=result.previous_version,
        model_version=result.model_version,
        load_ms=result.load_ms,
    )
