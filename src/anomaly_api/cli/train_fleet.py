"""``anomaly-api train-fleet``: one named model per group of a file's rows."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from anomaly_api.cli.common import fail, progress, resolve_artifacts_dir, user_errors

_BUNDLE_PARTS = 4
"""A task takes 1/(this x workers) of the groups not yet handed out (24 tasks for 100
groups on two workers): a task costs the command's process (client and scheduler) the same
few milliseconds of CPU whatever its size."""

if TYPE_CHECKING:
    from anomaly_api.bulk.dask_pool import DaskPool
    from anomaly_api.training.fleet import FleetGroup, GroupResult
    from anomaly_api.training.request import TrainingRequest

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
    with user_errors(), ExitStack() as stack:
        pool_ready = None
        if engine == "dask":
            from anomaly_api.bulk.dask_pool import pool_meanwhile

            # the cluster starts while this process reads and splits the file
            workers_asked = None if address else workers
            pool_ready = stack.enter_context(pool_meanwhile(address, workers_asked, 1, _PRELOAD))
        from anomaly_api.data.loading import read_table
        from anomaly_api.training.fleet import split_groups, train_group

        groups = split_groups(read_table(data), group_column)
        progress(f"{len(groups)} groups in {data} by {group_column!r}; engine {engine}")
        if pool_ready is None:
            results = [train_group(directory, g, request, str(data)) for g in groups]
        else:
            results = _train_on(pool_ready(), groups, directory, request, str(data))
    seconds = time.perf_counter() - started
    if as_json:
        rows = [vars(r) for r in results]
        typer.echo(json.dumps({"models": rows, "seconds": round(seconds, 3)}, indent=2))
        return
    for result in results:
        typer.echo(f"{result.model}: version {result.version} ({result.rows} rows)")
    typer.echo(f"{len(results)} models trained in {seconds:.1f} s ({engine})")


def _train_on(
    pool: DaskPool,
    groups: list[FleetGroup],
    directory: str,
    request: TrainingRequest,
    source: str,
) -> list[GroupResult]:
    """The groups trained on ``pool``, listed in the groups' order. The largest groups go
    first, several to a task while many are left and one at the end
    (``guided_bundles``), so that the last tasks are short and no worker waits long for
    the other; each group is published by its worker as soon as it is trained."""
    from anomaly_api.bulk.dask_pool import guided_bundles
    from anomaly_api.training.fleet import train_groups

    order = sorted(range(len(groups)), key=lambda i: -len(groups[i].frame))
    done = pool.in_order(
        guided_bundles(order, _BUNDLE_PARTS * pool.n_workers),
        lambda bundle: (train_groups, directory, [groups[i] for i in bundle], request, source),
    )
    by_index = {i: r for bundle, rs in done for i, r in zip(bundle, rs, strict=True)}
    return [by_index[i] for i in range(len(groups))]
