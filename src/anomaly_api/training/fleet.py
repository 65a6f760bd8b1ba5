"""One model per group of rows (``anomaly-api train-fleet``): a pump kind, a host, a line.

Each group is trained as ``anomaly-api train`` would train it alone (the same pipeline,
options and seed), staged and published as its own named model (``training.publishing``),
so a fleet stopped half-way leaves the groups it finished, each whole, and nothing of the
others. The groups are independent tasks: ``train_group`` runs in this process or on a
Dask worker alike.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from anomaly_api.data.errors import DataError
from anomaly_api.names import validate_model_name
from anomaly_api.training.request import TrainingRequest, ensemble_config

__all__ = [
    "FleetGroup",
    "GroupResult",
    "model_name_of",
    "split_groups",
    "train_group",
    "train_groups",
]

_INVALID = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class FleetGroup:
    """The rows of one group and the model they train."""

    model: str
    value: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class GroupResult:
    """One published model of the fleet."""

    model: str
    version: str
    rows: int
    seconds: float


def model_name_of(value: object) -> str:
    """A group value as a model name: lower case, other characters as ``-``
    (``"Pump A/2"`` -> ``pump-a-2``); ``DataError`` when nothing usable is left."""
    name = _INVALID.sub("-", str(value).strip().lower()).strip("-._")[:63]
    try:
        return validate_model_name(name)
    except ValueError as exc:
        raise DataError(f"group {value!r} gives no usable model name: {exc}") from exc


def split_groups(frame: pd.DataFrame, column: str) -> list[FleetGroup]:
    """The groups of ``frame`` by ``column`` (the column itself dropped), in order of
    their names; two values that give the same model name are refused."""
    if column not in frame.columns:
        raise DataError(f"group column {column!r} not found; columns are {list(frame.columns)}")
    if frame[column].isna().any():
        raise DataError(f"group column {column!r} has {int(frame[column].isna().sum())} missing")
    groups: dict[str, FleetGroup] = {}
    for value, rows in frame.groupby(column, sort=True):
        name = model_name_of(value)
        if name in groups:
            raise DataError(
                f"groups {groups[name].value!r} and {value!r} both give model name {name!r}"
            )
        part = rows.drop(columns=[column]).reset_index(drop=True)
        groups[name] = FleetGroup(model=name, value=str(value), frame=part)
    return [groups[name] for name in sorted(groups)]


def train_group(
    artifacts_dir: str, group: FleetGroup, request: TrainingRequest, source: str
) -> GroupResult:
    """Train, stage and publish one group's model (in this process or on a worker)."""
    from anomaly_api.data.loading import dataset_from_frame
    from anomaly_api.training.pipeline import train_and_save
    from anomaly_api.training.publishing import discard, publish, staging_dir

    started = time.perf_counter()
    root = Path(artifacts_dir)
    dataset = dataset_from_frame(
        group.frame,
        source=f"{source} [{group.value}]",
        features=None if request.features is None else list(request.features),
        label_column=request.label_column,
    )
    staging = staging_dir(root, group.model, uuid.uuid4().hex)
    try:
        result = train_and_save(
            dataset,
            staging,
            seed=request.seed,
            target_fpr=request.target_fpr,
            version=request.version,
            config=ensemble_config(request),
            make_latest=False,
        )
        publish(root, group.model, staging, result.version)
    finally:
        discard(staging)
    return GroupResult(
        model=group.model,
        version=result.version,
        rows=dataset.n_rows,
        seconds=time.perf_counter() - started,
    )


def train_groups(
    artifacts_dir: str, groups: list[FleetGroup], request: TrainingRequest, source: str
) -> list[GroupResult]:
    """``train_group`` for each group in turn (one task of several groups): each group is
    published as soon as it is trained, so a task stopped or failing half-way leaves the
    groups before it whole; the first error ends the task."""
    return [train_group(artifacts_dir, group, request, source) for group in groups]
