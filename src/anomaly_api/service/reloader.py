"""Hot model reload: load and verify the new artifact first, then swap it in atomically.

The new ``Predictor`` is built in a worker thread (hashing and unpickling must not stall
the event loop) while the old one keeps serving. The swap is one attribute assignment on
the runtime: a request that already holds the old predictor finishes on it, every later
request sees the new one. Cache keys carry the model version, so the new model never
reads the old one's answers. A failed load changes nothing and says why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread

from anomaly_api.artifacts import ArtifactNotFoundError
from anomaly_api.service.errors import ModelReloadError, ModelVersionNotFoundError
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.runtime import ServiceRuntime

__all__ = ["ModelReloader", "ReloadResult", "install_sighup_reload"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a successful reload did."""

    previous_version: str | None
    model_version: str
    load_ms: float


class ModelReloader:
    """Serialises reloads of one runtime's model and reports each attempt to ``on_result``."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        build: Callable[[str | None], Predictor],
        *,
        on_result: Callable[[str | None, bool], None] | None = None,
    ) -> None:
        """``build(version)`` loads and verifies a version (``None`` = ``LATEST``), or raises.

        ``on_result(version_now_served, ok)`` runs after each attempt (metrics).
        """
        self.runtime = runtime
        self._build = build
        self._on_result = on_result
        self._lock = asyncio.Lock()

    async def reload(self, version: str | None = None) -> ReloadResult:
        """Load ``version`` (``LATEST`` when None), verify it, and serve it from now on.

        Raises ``ModelVersionNotFoundError`` or ``ModelReloadError``; the old model is
        untouched then.
        """
        async with self._lock:
            previous = self.runtime.predictor
            previous_version = previous.version if previous else None
            started = time.perf_counter()
            try:
                predictor = await anyio.to_thread.run_sync(self._build, version)
            except ArtifactNotFoundError as exc:
                self._report(previous_version, ok=False)
                raise ModelVersionNotFoundError(
                    f"reload refused, still serving {previous_version!r}: {exc}",
                    current_version=previous_version,
                ) from exc
            except Exception as exc:  # whatever went wrong, the old model keeps serving
                self._report(previous_version, ok=False)
                _log.error(
                    "model reload failed; still serving %s",
                    previous_version,
                    extra={"requested_version": version, "reason": str(exc)},
                )
                raise ModelReloadError(
                    f"reload refused, still serving {previous_version!r}: "
                    f"{type(exc).__name__}: {exc}",
                    current_version=previous_version,
                ) from exc
            self.runtime.predictor = predictor  # the atomic swap
            self.runtime.load_error = None
            load_ms = (time.perf_counter() - started) * 1000
            self._report(predictor.version, ok=True)
            _log.info(
                "model reloaded",
                extra={
                    "previous_version": previous_version,
                    "model_version": predictor.version,
                    "load_ms": round(load_ms, 1),
                },
            )
            return ReloadResult(previous_version, predictor.version, load_ms)

    def _report(self, version: str | None, *, ok: bool) -> None:
        if self._on_result is not None:
            self._on_result(version, ok)


def install_sighup_reload(reloader: ModelReloader) -> Callable[[], None]:
    """Make ``SIGHUP`` reload ``LATEST`` on the running loop; returns the uninstaller.

    Only the main thread can own signals (a test client runs the app elsewhere): there,
    and where the platform has no SIGHUP, this does nothing.
    """
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def reload_logged() -> None:
        try:
            await reloader.reload()
        except ModelReloadError as exc:
            _log.error("SIGHUP reload failed: %s", exc.message)

    def on_sighup() -> None:
        _log.info("SIGHUP received: reloading the model")
        task = loop.create_task(reload_logged())
        pending.add(task)
        task.add_done_callback(pending.discard)

    def uninstall() -> None:
        loop.remove_signal_handler(sighup)

    loop.add_signal_handler(sighup, on_sighup)
    return uninstall
