"""``POST /models/{name}/versions``: train a new version of a named model in a worker
process; ``GET /jobs/{job_id}`` follows the job, ``DELETE /jobs/{job_id}`` cancels it.

The training data is the request body itself (``Content-Type: text/csv`` or
``application/vnd.apache.parquet``), streamed to a temporary file as it arrives and
bounded by ``training_max_upload_bytes``; or a JSON body naming a file under
``training_data_dir`` (``{"path": "plant-3/pumps.csv"}``) or the synthetic sensor data
(``{"synthetic": true}``). The options of ``anomaly-api train`` are query parameters with
the same names (``window``, ``target_fpr``, ``detectors``, ...). Everything that can be
checked without reading the rows (the options, the header row or Parquet schema) is
checked before the job is queued: 422 naming the column or option.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import Scope

from anomaly_api.api.body import load_json, validate_body
from anomaly_api.api.deps import JobsDep, SettingsDep
from anomaly_api.api.errors import UnsupportedMediaTypeError
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.api.security import AdminKeyDep
from anomaly_api.config import Settings
from anomaly_api.data.errors import DataError
from anomaly_api.service.errors import InvalidInputError
from anomaly_api.service.jobs import JobRecord
from anomaly_api.training.request import (
    RequestError,
    TrainingRequest,
    check_columns,
    check_request,
    parse_names,
)

__all__ = ["is_training_upload", "router"]

router = APIRouter(tags=["training"], dependencies=[AdminKeyDep])
_audit = logging.getLogger("anomaly_api.audit")

UPLOAD_SUFFIXES = {
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
}
"""Media types of a training upload and the file suffix the data layer reads them by."""
_VERSIONS_PATH = "/models/{name}/versions"
_CHUNK = 1 << 20
"""Bytes gathered from the body before one write to the temporary file."""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_training_upload(scope: Scope) -> bool:
    """Whether a request uploads training data (bounded by ``training_max_upload_bytes``
    rather than ``max_body_bytes``)."""
    path = str(scope.get("path", ""))
    if scope.get("method") != "POST" or not (
        path.startswith("/models/") and path.endswith("/versions")
    ):
        return False
    headers = dict(scope.get("headers") or [])
    return _media_type(headers.get(b"content-type", b"").decode("latin-1")) in UPLOAD_SUFFIXES


class TrainingOptions(BaseModel):
    """The options of ``anomaly-api train``, as query parameters of the same names."""

    model_config = ConfigDict(extra="forbid")

    features: str | None = Field(
        default=None, description="Comma-separated feature columns (default: all numeric)."
    )
    label_column: str | None = Field(
        default=None, description="0/1 label column (default: is_anomaly when present)."
    )
    seed: int = Field(default=42, description="Seed of the split and the model.")
    version: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Version name (default: UTC time + data fingerprint).",
    )
    target_fpr: float | None = Field(
        default=None, description="Tune thresholds to this false-positive rate, in (0, 1)."
    )
    detectors: str | None = Field(
        default=None,
        description="Comma-separated members: isolation_forest, local_outlier_factor, "
        "zscore, pca (default: the first three).",
    )
    min_votes: int | None = Field(default=None, description="Members that must agree.")
    contamination: float | None = Field(
        default=None, description="Share of training rows each member flags without labels."
    )
    window: int | None = Field(
        default=None, ge=4, description="Train a time-aware model on windows of this many."
    )
    timestamp_column: str | None = Field(default=None, description="With window: timestamps.")
    stream_column: str | None = Field(default=None, description="With window: stream ids.")
    max_gap_factor: float = Field(
        default=3.0, description="With window: a longer gap (median intervals) restarts it."
    )
    follow_memory: int | None = Field(
        default=None,
        description="With window: memory in readings of the level and spread each reading "
        "is also judged against (the follow feature; 500 is the measured one); default 0, none.",
    )

    def request(self) -> TrainingRequest:
        """The training request these options make."""
        values = self.model_dump()
        return TrainingRequest(
            **values
            | {"features": parse_names(self.features), "detectors": parse_names(self.detectors)}
        )


class TrainingSource(BaseModel):
    """A JSON body: where the data is when it is not uploaded."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        max_length=4096,
        description="A CSV/Parquet file, relative to the training data directory.",
    )
    synthetic: bool = Field(default=False, description="The synthetic sensor data.")

    @model_validator(mode="after")
    def _exactly_one(self) -> TrainingSource:
        if (self.path is None) == (not self.synthetic):
            raise ValueError("give exactly one of path and synthetic: true")
        return self


class JobView(BaseModel):
    """A training job as ``GET /jobs/{job_id}`` shows it."""

    job_id: str
    model: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    progress: str | None
    version: str | None
    metrics: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    owner: str = Field(description="The replica that runs it.")


def _view(record: JobRecord) -> dict[str, Any]:
    return record.model_dump(exclude={"heartbeat_at"})


def _error(description: str) -> dict[str, object]:
    return {"model": ErrorResponse, "description": description}


def _spell(name: str) -> str:
    return name


async def _upload(request: Request, suffix: str) -> tuple[Path, Path]:
    """Stream the body into a new temporary directory: (the file, the directory)."""
    directory = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, "", "anomaly-upload-"))
    path = directory / f"data{suffix}"
    try:
        handle = await anyio.to_thread.run_sync(path.open, "wb")
        with handle:
            pending = bytearray()
            async for chunk in request.stream():
                pending += chunk
                if len(pending) >= _CHUNK:
                    await anyio.to_thread.run_sync(handle.write, bytes(pending))
                    pending.clear()
            await anyio.to_thread.run_sync(handle.write, bytes(pending))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return path, directory


async def _named_file(request: Request, settings: Settings) -> Path | None:
    """The file a JSON body names under the training data directory (None: synthetic)."""
    source = validate_body(TrainingSource, await load_json(request))
    if source.path is None:
        return None
    root = settings.training_data_dir
    if root is None:
        raise InvalidInputError(
            "no training data directory is configured (ANOMALY_TRAINING_DATA_DIR): "
            "upload the data as the request body instead"
        )
    from anomaly_api.data.loading import resolve_under

    relative = source.path
    try:
        return await anyio.to_thread.run_sync(lambda: resolve_under(root, relative))
    except DataError as exc:
        raise InvalidInputError(str(exc)) from exc


def _check_options(training: TrainingRequest, *, has_data: bool) -> None:
    try:
        check_request(training, has_data=has_data, spell=_spell)
    except RequestError as exc:
        raise InvalidInputError(str(exc)) from exc


def _check_header(training: TrainingRequest, data: Path) -> None:
    from anomaly_api.data.loading import read_columns

    try:
        check_columns(training, read_columns(data), _spell)
    except (DataError, RequestError) as exc:
        raise InvalidInputError(str(exc)) from exc


@router.post(
    _VERSIONS_PATH,
    status_code=202,
    response_model=JobView,
    responses={
        400: _error("A JSON body that is not valid JSON."),
        401: _error("An admin key is required and none was sent."),
        403: _error("The key sent is not an admin key (or none is configured, remotely)."),
        413: _error("The upload is larger than `training_max_upload_bytes`."),
        415: _error("The body is neither CSV, Parquet nor JSON."),
        422: _error("A bad option, model name or path, or a column the data lacks."),
        429: _error("This replica's job queue is full; retry after `Retry-After`."),
    },
)
async def train_version(
    request: Request,
    name: Annotated[str, PathParam(description="The model to add a version to.")],
    options: Annotated[TrainingOptions, Query()],
    jobs: JobsDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Queue a job that trains a new version of ``name`` (as ``anomaly-api train`` does) in
    a worker process; it becomes the model's ``candidate`` (and its ``production`` when it
    is its first). Answers 202 with the job at once; follow it at ``GET /jobs/{job_id}``."""
    from anomaly_api.registry import validate_model_name

    try:
        validate_model_name(name)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    training = options.request()
    media = _media_type(request.headers.get("content-type"))
    suffix = UPLOAD_SUFFIXES.get(media)
    if suffix is None and media != "application/json":
        raise UnsupportedMediaTypeError(
            "Content-Type must be text/csv or application/vnd.apache.parquet (the data "
            'itself), or application/json ({"path": ...} or {"synthetic": true})'
        )
    cleanup: Path | None = None
    try:
        jobs.check_room()  # 429 before an upload is read, not after
        if suffix is None:
            data = await _named_file(request, settings)
            _check_options(training, has_data=data is not None)
        else:
            _check_options(training, has_data=True)  # before the upload is read
            data, cleanup = await _upload(request, suffix)
        if data is not None:
            await anyio.to_thread.run_sync(_check_header, training, data)
        record = await jobs.submit(name, training, data, cleanup)
    except BaseException:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise
    _audit.info(
        "training job queued",
        extra={
            "audit": "training",
            "job_id": record.job_id,
            "model": name,
            "data": f"upload ({media})" if suffix else str(data or "synthetic"),
            "options": options.model_dump(exclude_defaults=True),
        },
    )
    location = {"Location": f"/jobs/{record.job_id}"}
    return JSONResponse(_view(record), status_code=202, headers=location)


_JOB_ID = PathParam(max_length=64, description="As `POST /models/{name}/versions` answered.")


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses={404: _error("No such job (or it expired).")},
)
async def read_job(job_id: Annotated[str, _JOB_ID], jobs: JobsDep) -> dict[str, Any]:
    """The job's status, its latest progress line, and once it succeeded the version it
    published and its metrics (or why it failed)."""
    return _view(await jobs.status(job_id))


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobView,
    responses={404: _error("No such job (or it expired).")},
)
async def cancel_job(job_id: Annotated[str, _JOB_ID], jobs: JobsDep) -> dict[str, Any]:
    """Cancel a queued or running job: its worker process is stopped and nothing is
    published; the status turns `cancelled` once it has stopped. A finished job stays as
    it is."""
    record = await jobs.cancel(job_id)
    _audit.info(
        "training job cancelled",
        extra={"audit": "training", "job_id": job_id, "status": record.status},
    )
    return _view(record)
