"""``anomaly-api watch``: run the jobs of a ``watch.yaml`` (docs/watching.md).

``--check`` validates the file and loads every model, then exits; ``--backfill --from T0
--to T1`` scores a past period of every Prometheus job (events to the sinks, no live
metrics, no watermark moved).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anomaly_api.cli.common import fail, progress

if TYPE_CHECKING:
    from anomaly_api.watch.runner import Watcher


def _instant(value: str, option: str) -> float:
    """An ISO 8601 time (UTC when no zone is given) or epoch seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is neither ISO 8601 nor epoch seconds")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def _until_signalled(watcher: Watcher) -> None:
    """Run the watcher; SIGTERM or SIGINT cancels it, so it flushes its sinks and exits 0."""
    import asyncio
    import signal

    task = asyncio.create_task(watcher.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def watch(
    *,
    config: Annotated[Path, typer.Option(help="The watch.yaml to run.")],
    check: Annotated[
        bool, typer.Option("--check", help="Validate the file and the models, then exit.")
    ] = False,
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Score --from..--to of every Prometheus job.")
    ] = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="Backfill start (ISO 8601 or epoch s).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Backfill end (ISO 8601 or epoch s).")] = None,
) -> None:
    """Watch Prometheus and MQTT: score their readings on a schedule, write the results."""
    import asyncio

    from anomaly_api.config import SettingsError, get_settings
    from anomaly_api.logging_config import configure_logging
    from anomaly_api.watch.config import WatchConfigError, load_watch_config
    from anomaly_api.watch.runner import Watcher

    try:
        settings = get_settings()
        parsed = load_watch_config(config)
        watcher = Watcher(parsed, settings)
        if check:
            watcher.check()
    except (SettingsError, WatchConfigError) as exc:
        fail(str(exc).replace("\n", "\nerror: "))
    if check:
        progress(f"{config}: {len(parsed.jobs)} job(s), every model loads")
        return
    configure_logging(settings.log_level, settings.log_format)
    if backfill:
        if from_ is None or to is None:
            fail("--backfill needs --from and --to")
        start, end = _instant(from_, "--from"), _instant(to, "--to")
        if end <= start:
            fail("--to must be after --from")
        try:
            counts = asyncio.run(watcher.backfill(start, end))
        except WatchConfigError as exc:
            fail(str(exc).replace("\n", "\nerror: "))
        for job, n in counts.items():
            typer.echo(f"{job}: {n} readings scored")
        return
    try:
        asyncio.run(_until_signalled(watcher))
    except WatchConfigError as exc:
        fail(str(exc).replace("\n", "\nerror: "))
