"""``anomaly-api serve``: train the default model when there is none, then run uvicorn.

One worker serves the app built here; more run under uvicorn's supervisor, each a whole
service built by ``workers.worker_app`` (see ``anomaly_api.cli.workers``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from anomaly_api.cli.common import fail, progress, user_errors


def serve(
    *,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: ANOMALY_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to bind (default: ANOMALY_PORT)."),
    ] = None,
    loop: Annotated[
        Literal["asyncio", "uvloop", "auto"] | None,
        typer.Option(help="Event loop: asyncio, uvloop or auto (default: ANOMALY_LOOP)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: ANOMALY_WORKERS, else one per available core "
            "with REDIS_URL, 1 without). More than 1 needs REDIS_URL.",
        ),
    ] = None,
    train_if_missing: Annotated[
        bool,
        typer.Option(
            "--train-if-missing/--no-train-if-missing",
            help="Train the default model first when the artifact directory has none.",
        ),
    ] = True,
) -> None:
    """Serve the HTTP API (docs at /docs) with the configured model version."""
    import uvicorn

    from anomaly_api.api.app import create_app
    from anomaly_api.artifacts import latest_version
    from anomaly_api.cli import workers as multiprocess
    from anomaly_api.cli.shutdown import exit_cleanly_after_sigterm
    from anomaly_api.config import SettingsError, get_settings
    from anomaly_api.logging_config import configure_logging

    try:
        settings = get_settings()
    except SettingsError as exc:  # one line naming the variable, not a traceback
        fail(str(exc))
    updates = {"host": host, "port": port, "loop": loop}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    try:
        n_workers = multiprocess.resolve_workers(
            workers if workers is not None else settings.workers,
            shared=settings.redis_url is not None,
            cores=multiprocess.available_cores(),
        )
    except ValueError as exc:
        fail(str(exc))
    with user_errors():
        no_model = settings.model_version is None and latest_version(settings.artifacts_dir) is None
        if no_model and train_if_missing:
            try:
                from anomaly_api.training.pipeline import train_default_model
            except ImportError as exc:  # a serving-only install (the container image)
                fail(
                    f"no model in {settings.artifacts_dir}, and training is not installed "
                    f"here ({exc.name} is missing): mount a trained artifact directory"
                )
            progress(f"no model in {settings.artifacts_dir}; training the default model")
            train_default_model(settings.artifacts_dir)
    configure_logging(settings.log_level, settings.log_format)
    exit_cleanly_after_sigterm()
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": settings.loop,
        "log_level": settings.log_level.lower(),
        "log_config": None,  # configure_logging's JSON/text handlers
        "access_log": False,  # one access line per request comes from the app
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
    }
    if n_workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    progress(f"serving with {n_workers} worker processes")
    options["timeout_worker_healthcheck"] = settings.worker_start_timeout_s
    multiprocess.run_workers(n_workers, options)
