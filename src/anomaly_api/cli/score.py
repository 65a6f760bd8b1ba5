"""``anomaly-api score``: score a CSV/Parquet file into a Parquet file.

A point-wise model scores each row alone, in chunks (a file of any size). With
``--timestamp-column`` a time-aware model replays each stream of the file in time order,
as the service's streams would answer it (a backtest).
"""

from __future__ import annotations

import signal
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from anomaly_api.cli.common import fail, resolve_artifacts_dir, user_errors

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class EngineName(StrEnum):
    """Where the chunks are scored."""

    local = "local"
    dask = "dask"


class TerminatedError(Exception):
    """SIGTERM arrived: unwind (removing the partial output) and exit 143."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError


def score(
    *,
    data: Annotated[Path, typer.Option(help="Input file, .csv or .parquet.")],
    out: Annotated[Path, typer.Option(help="Output .parquet: the input's columns + the answers.")],
    version: Annotated[str | None, typer.Option(help="Model version (default: LATEST).")] = None,
    artifacts_dir: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ANOMALY_ARTIFACTS_DIR).")
    ] = None,
    engine: Annotated[
        EngineName, typer.Option(help="local: this process, all cores; dask: Dask distributed.")
    ] = EngineName.local,
    address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: a local cluster of processes)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Workers of the local Dask cluster (default: cores).")
    ] = None,
    via: Annotated[
        str | None, typer.Option(help="Score through the running service at this URL instead.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="ANOMALY_CLIENT_API_KEY", help="API key for --via.")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows read and scored at once.")] = 100_000,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Scoring threads of the local engine (default: cores)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    timestamp_column: Annotated[
        str | None,
        typer.Option(
            help="Time-aware model: replay each stream in time order (timestamps as ISO 8601 "
            "or epoch seconds), as the service's streams would answer it."
        ),
    ] = None,
    stream_column: Annotated[
        str | None,
        typer.Option(help="With --timestamp-column: the stream id column (default: one stream)."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(help="With --timestamp-column: write the streams' events here (JSON Lines)."),
    ] = None,
) -> None:
    """Score every row of a file with a model version; stops at the first bad value.

    A point-wise model scores each row alone; a time-aware model replays each stream in
    time order (``--timestamp-column``, ``--stream-column``), as the service's streams would.
    """
    from anomaly_api.bulk import runner
    from anomaly_api.bulk.tables import count_rows

    _check_options(
        engine, via=via, address=address, timestamp=timestamp_column, stream=stream_column
    )
    if events is not None and timestamp_column is None:
        fail("--events needs --timestamp-column (events come from replaying streams)")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    chosen: Any = None
    try:
        with user_errors():
            total = count_rows(data)
            directory = resolve_artifacts_dir(artifacts_dir)
            dask = engine is EngineName.dask
            if via is not None:
                chosen = _service_engine(via, api_key, version)
            elif timestamp_column is not None:
                chosen = _replay_engine(directory, version, dask, address, workers)
            else:
                chosen = _scoring_engine(
                    directory, version, dask, address, workers, threads=threads
                )
            with _progress_bar(total, enabled=progress) as advance:
                if timestamp_column is not None:
                    summary = runner.replay(
                        data,
                        out,
                        chosen,
                        timestamp_column=timestamp_column,
                        stream_column=stream_column,
                        events=events,
                        on_rows=advance,
                    )
                else:
                    summary = runner.run(data, out, chosen, chunk_rows=chunk_rows, on_rows=advance)
    except KeyboardInterrupt:
        typer.echo("error: interrupted; no output written", err=True)
        raise typer.Exit(EXIT_SIGINT) from None
    except TerminatedError:
        typer.echo("error: terminated; no output written", err=True)
        raise typer.Exit(EXIT_SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if chosen is not None:
            chosen.close()
    typer.echo(summary.line())


def _check_options(
    engine: EngineName,
    *,
    via: str | None,
    address: str | None,
    timestamp: str | None,
    stream: str | None,
) -> None:
    """Refuse combinations of options that cannot work, before anything is read."""
    if via is not None and (engine is not EngineName.local or address is not None):
        fail("--via scores through a service; it cannot be combined with --engine dask/--address")
    if address is not None and engine is not EngineName.dask:
        fail("--address needs --engine dask")
    if stream is not None and timestamp is None:
        fail("--stream-column needs --timestamp-column (a replay of streams in time order)")
    if via is not None and timestamp is not None:
        fail("--timestamp-column replays streams in this process or on Dask, not --via")


def _replay_engine(
    directory: Path, version: str | None, dask: bool, address: str | None, workers: int | None
) -> Any:
    from anomaly_api.bulk.engines import DaskReplayEngine, LocalReplayEngine

    if dask:
        return DaskReplayEngine(directory, version, address=address, n_workers=workers)
    return LocalReplayEngine(directory, version)


def _scoring_engine(
    directory: Path,
    version: str | None,
    dask: bool,
    address: str | None,
    workers: int | None,
    *,
    threads: int | None,
) -> Any:
    from anomaly_api.bulk.engines import DaskEngine, LocalEngine, model_manifest

    manifest = model_manifest(directory, version)
    if manifest.time_aware is not None:
        fail(
            f"model {manifest.version!r} is time-aware: give --timestamp-column "
            "(and --stream-column for several streams) to replay its streams"
        )
    if dask:
        return DaskEngine(directory, version, address=address, n_workers=workers)
    return LocalEngine(directory, version, threads=threads)


def _service_engine(url: str, api_key: str | None, version: str | None) -> Any:
    from anomaly_api.bulk.engines import ServiceEngine
    from anomaly_api.client import AnomalyApiError, AnomalyConnectionError

    try:
        return ServiceEngine(url, api_key, version)
    except (AnomalyApiError, AnomalyConnectionError) as exc:
        fail(f"{url}: {exc}")


class _progress_bar:  # noqa: N801 - used as a context manager, like a function
    """A rich progress bar with rows/s and ETA, or nothing."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self._total = total
        self._enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        task = self._progress.add_task("score", total=self._total, rate="")
        progress = self._progress

        def advance(rows: int) -> None:
            progress.advance(task, rows)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
