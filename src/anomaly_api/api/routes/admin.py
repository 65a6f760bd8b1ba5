"""``POST /admin/reload``: load, verify and swap in a model version without downtime.
``POST /admin/thresholds``: write a threshold revision of the served model and swap it in.

Both announce the version they swapped in to the other replicas (with Redis); the answer
says whether the announcement went out."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from anomaly_api.api.deps import PredictorDep, ReloaderDep, RevisionsDep, SettingsDep
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.api.security import AdminKeyDep
from anomaly_api.service.errors import InvalidInputError, ModelReloadError
from anomaly_api.service.revisions import announce_swap

_audit = logging.getLogger("anomaly_api.audit")
_tune_lock = asyncio.Lock()

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminKeyDep])

_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class ReloadResponse(BaseModel):
    """A successful reload: the version served from now on."""

    reloaded: bool = True
    previous_version: str | None = Field(description="The version served before.")
    model_version: str = Field(description="The version served from now on.")
    load_ms: float = Field(description="Time to load and verify the new artifact.")
    announced: bool = Field(
        description="Whether the other replicas were told to follow (needs Redis)."
    )
    announcement: str = Field(description="What was announced where, or why not.")


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
    revisions: RevisionsDep,
    version: Annotated[
        str | None,
        Query(
            pattern=_VERSION_PATTERN,
            description="Version to serve; the artifact directory's LATEST when omitted.",
        ),
    ] = None,
) -> ReloadResponse:
    """Load and verify the artifact first, then swap it in; requests in flight finish on the
    model they started with, and a failed load keeps the old model serving. The version now
    served is announced to the other replicas, which load it from their artifact directory."""
    result = await reloader.reload(version)
    announcement = await announce_swap(revisions, result.model_version)
    return ReloadResponse(
        previous_version=result.previous_version,
        model_version=result.model_version,
        load_ms=result.load_ms,
        announced=announcement.sent,
        announcement=announcement.detail,
    )


class ThresholdsRequest(BaseModel):
    """Exactly one objective, as ``anomaly-api tune`` takes it."""

    model_config = ConfigDict(extra="forbid")

    target_fpr: float | None = Field(default=None, description="In (0, 1).")
    contamination: float | None = Field(default=None, description="In (0, 0.5].")
    target_recall: float | None = Field(default=None, description="In (0, 1); needs labels.")
    thresholds: dict[str, float] | None = Field(
        default=None, description="Detector name -> threshold; the others keep theirs."
    )
    feedback: list[Any] | None = Field(
        default=None,
        description="Labelled event records (as `GET /streams/{id}/events` lists them, or "
        "`anomaly-api score --events` writes them, with `label` or `feedback.label`): lower "
        "every anomaly score by the smallest shift that silences the false alarms below the "
        "lowest confirmed peak.",
    )
    max_shift: float | None = Field(
        default=None, ge=0, description="With `feedback`: the largest shift (default 2)."
    )
    new_version: str | None = Field(
        default=None, pattern=_VERSION_PATTERN, description="Default: <version>-t<hash>."
    )


class ThresholdsResponse(BaseModel):
    """The revision written and now served."""

    model_version: str
    parent_version: str
    objective: str
    thresholds_before: dict[str, float]
    thresholds_after: dict[str, float]
    expected: dict[str, float | None]
    feedback: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="With `feedback`: the shift, the counts and the false alarms that stay.",
    )
    load_ms: float
    announced: bool = Field(
        description="Whether the other replicas were told to follow (needs Redis)."
    )
    announcement: str = Field(description="What was announced where, or why not.")


def _objective(body: ThresholdsRequest) -> Any:
    from anomaly_api.training.feedback import DEFAULT_MAX_SHIFT, labelled_peaks, shift_for
    from anomaly_api.training.tuning import (
        Contamination,
        Explicit,
        TargetFPR,
        TargetRecall,
        TuningError,
    )

    given = [
        name
        for name in ("target_fpr", "contamination", "target_recall", "thresholds", "feedback")
        if getattr(body, name) is not None
    ]
    if len(given) != 1:
        raise InvalidInputError(
            "give exactly one of target_fpr, contamination, target_recall, thresholds, feedback"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if body.max_shift is not None and body.feedback is None:
        raise InvalidInputError("max_shift goes with feedback")
    if body.feedback is not None:
        max_shift = DEFAULT_MAX_SHIFT if body.max_shift is None else body.max_shift
        try:
            return shift_for(labelled_peaks(body.feedback), max_shift)
        except TuningError as exc:
            raise InvalidInputError(f"feedback: {exc}") from exc
    for name in ("target_fpr", "contamination", "target_recall"):
        value = getattr(body, name)
        if value is not None and not math.isfinite(value):
            raise InvalidInputError(f"{name} must be finite")
    if body.target_fpr is not None:
        return TargetFPR(body.target_fpr)
    if body.contamination is not None:
        return Contamination(body.contamination)
    if body.target_recall is not None:
        return TargetRecall(body.target_recall)
    assert body.thresholds is not None
    return Explicit(dict(body.thresholds))


@router.post(
    "/thresholds",
    responses={
        400: _error("The body is not valid JSON (NaN and Infinity included); nothing changed."),
        401: _error("An admin key is required and none was sent."),
        403: _error("The key sent is not an admin key."),
        409: _error(
            "The new version could not be written (a read-only artifact directory) or "
            "failed to load; the old model keeps serving."
        ),
        413: _error("The body is larger than the configured limit; nothing changed."),
        422: _error("Bad objective (range, unknown detector, non-finite); nothing changed."),
    },
)
async def move_thresholds(
    body: ThresholdsRequest,
    predictor: PredictorDep,
    reloader: ReloaderDep,
    revisions: RevisionsDep,
    settings: SettingsDep,
) -> ThresholdsResponse:
    """Write a new version of the served model with thresholds for one objective (like
    ``anomaly-api tune``: its own verified manifest, ``LATEST`` moved to it), then swap it
    in with the same atomic swap as ``/admin/reload``, and announce it: with Redis, the other
    replicas load it from the shared artifact directory. A bad request (422) writes and
    changes nothing."""
    from anomaly_api.artifacts import ArtifactError
    from anomaly_api.training.revision import tune_version
    from anomaly_api.training.tuning import TuningError

    objective = _objective(body)
    async with _tune_lock:
        try:
            result = await anyio.to_thread.run_sync(
                lambda: tune_version(
                    settings.artifacts_dir,
                    predictor.version,
                    objective,
                    new_version=body.new_version,
                )
            )
        except TuningError as exc:
            raise InvalidInputError(str(exc)) from exc
        except ArtifactError as exc:
            raise InvalidInputError(f"cannot write the revision: {exc}") from exc
        except OSError as exc:  # e.g. the image's read-only artifact directory
            raise ModelReloadError(
                f"cannot write the revision into {settings.artifacts_dir} ({exc}); still "
                f"serving {predictor.version!r}: the artifact directory must be writable",
                current_version=predictor.version,
            ) from exc
        reloaded = await reloader.reload(result.version)
        announcement = await announce_swap(revisions, result.version)
    _audit.info(
        "thresholds moved",
        extra={
            "audit": "thresholds",
            "parent_version": result.parent_version,
            "model_version": result.version,
            "objective": result.objective,
            "thresholds_after": result.after,
            "announced": announcement.sent,
        },
    )
    return ThresholdsResponse(
        model_version=result.version,
        parent_version=result.parent_version,
        objective=result.objective,
        thresholds_before=result.before,
        thresholds_after=result.after,
        expected=result.expected,
        feedback=result.details,
        load_ms=reloaded.load_ms,
        announced=announcement.sent,
        announcement=announcement.detail,
    )
