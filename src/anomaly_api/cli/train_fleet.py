"""``anomaly-api train-fleet``: one named model per group of a file's rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from anomaly_api.cli.common import fail, progress, resolve_artifacts_dir, user_errors

if TYPE_CHECKING:
    from anomaly_api.training.fleet import GroupResult

_PRELOAD = ("anomaly_api.training.fleet", "anomaly_api.training.pipeline", "anomaly_api.cli.main")
"""What a worker of the fleet imports, imported once by the fork server: the tasks' code,
and the console script's module, since a worker runs the main script again on start."""


def train_fleet(
    *,
    data: Annotated[Path, typer.Option(help="CSV/Parquet file holding every group's rows.")],
    group_column: Annotated[
        str, typer.Option(help="Column whose values name the models (one model per value).")
    ],
    engine: Annotated[
        Literal["local", "dask"],
        typer.Option(help="local: one group after the other here; dask: groups in parallel."),
    ] = "local",
    workers: Annotated[
        int, typer.Option(min=1, help="With --engine dask and no --address: local workers.")
    ] = 2,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --engine dask: a running scheduler (its workers must see "
            "the artifact directory at the same path)."
        ),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature columns (default: all numeric).")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="0/1 label column (default: is_anomaly when present).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every group's split and model.")] = 42,
    target_fpr: Annotated[
        float | None, typer.Option(help="Tune thresholds to this false-positive rate.")
    ] = None,
    detectors: Annotated[
        str | None, typer.Option(help="Comma-separated members (as `train --detectors`).")
    ] = None,
    min_votes: Annotated[int | None, typer.Option(help="Members that must agree.")] = None,
    contamination: Annotated[
        float | None, typer.Option(help="Share of rows each member flags without labels.")
    ] = None,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Train one model per value of --group-column, each a new version of the model of
    that name (its `candidate`, and `production` when it is its first)."""
    if engine == "dask" and address is None:
        from anomaly_api.bulk.dask_pool import start_fork_server

        start_fork_server(_PRELOAD)  # first: it imports them while this process works
    from anomaly_api.training.request import (
        RequestError,
        TrainingRequest,
        check_request,
        parse_names,
    )

    request = TrainingRequest(
        features=parse_names(features),
        label_column=label_column,
        seed=seed,
        target_fpr=target_fpr,
        detectors=parse_names(detectors),
        min_votes=min_votes,
        contamination=contamination,
    )
    try:
        check_request(request, has_data=True)
    except RequestError as exc:
        fail(str(exc))
    directory = str(resolve_artifacts_dir(artifacts_dir).resolve())
    started = time.perf_counter()
    with user_errors():
        from anomaly_api.data.loading import read_table
        from anomaly_api.training.fleet import split_groups, train_group

        groups = split_groups(read_table(data), group_column)
        progress(f"{len(groups)} groups in {data} by {group_column!r}; engine {engine}")
        results: list[GroupResult] = []
        if engine == "local":
            results = [train_group(directory, g, request, str(data)) for g in groups]
        else:
            from anomaly_api.bulk.dask_pool import DaskPool

            pool = DaskPool(address, None if address else workers, 1, _PRELOAD)
            try:
                # the largest groups first, so that the last tasks are short and no
                # worker waits long for the other at the end
                order = sorted(range(len(groups)), key=lambda i: -len(groups[i].frame))
                done = pool.in_order(
                    order,
                    lambda i: (train_group, directory, groups[i], request, str(data)),
                )
                by_index = dict(done)
                results = [by_index[i] for i in range(len(groups))]
            finally:
                pool.close()
    seconds = time.perf_counter() - started
    if as_json:
        rows = [vars(r) for r in results]
        typer.echo(json.dumps({"models": rows, "seconds": round(seconds, 3)}, indent=2))
        return
    for result in results:
        typer.echo(f"{result.model}: version {result.version} ({result.rows} rows)")
    typer.echo(f"{len(results)} models trained in {seconds:.1f} s ({engine})")
