"""Exit status 0 after a graceful SIGTERM.

uvicorn handles SIGTERM itself: it stops accepting connections, lets requests in flight
finish (bounded by ``timeout_graceful_shutdown``), runs the lifespan shutdown (which
closes Redis), and then re-raises the signal with the handler that was installed before
it started. With the default handler that kills the process (exit status 143), which
orchestrators report as a crash. Installing this handler first turns that final signal
into a clean ``SystemExit(0)``.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

__all__ = ["exit_cleanly_after_sigterm"]


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def exit_cleanly_after_sigterm() -> None:
    """Make the SIGTERM uvicorn re-raises after its graceful shutdown end with status 0."""
    signal.signal(signal.SIGTERM, _exit_zero)
