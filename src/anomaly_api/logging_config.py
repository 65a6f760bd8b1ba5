"""Logging set-up: one JSON object per line (default) or readable text for local use.

Structured fields are passed with ``extra={...}``; the JSON formatter writes every
non-standard record attribute as a top-level key, so the access log line (see
``anomaly_api.api.request_context``) carries request id, route, status, latency, rows,
cache hits and model version as fields a log pipeline can index. Nothing here ever sees
request headers, so API keys cannot reach the logs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import UTC, datetime
from typing import Literal

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message", "taskName"}
# Loggers whose records are ours to format; uvicorn's own access log is replaced by ours.
_OWNED_LOGGERS = ("anomaly_api", "uvicorn", "uvicorn.error")


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _iso_utc(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class _UtcStamps:
    """``_iso_utc`` with the date and time of day formatted once a second: every log line
    (one per request) needs one. The microseconds are rounded as ``datetime`` rounds them
    (half to even, a carry into the next second), then cut to milliseconds."""

    def __init__(self) -> None:
        self._second: tuple[float, str] = (-1.0, "")

    def __call__(self, created: float) -> str:
        fraction, second = math.modf(created)
        if created < 0:
            return _iso_utc(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1.0, micros - 1_000_000
        cached, text = self._second  # one tuple: another thread's update is whole or absent
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", **extra}`` as one compact JSON line."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _UtcStamps()

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": self._stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        return f"{line} {fields}" if fields else line


def configure_logging(level: str = "INFO", fmt: LogFormat = "json") -> None:
    """Send the service's and uvicorn's logs to stderr in ``fmt`` at ``level``.

    Idempotent: calling it again replaces the handler it installed before. Neither
    formatter writes the caller's file, line, thread or process, so the records do not
    collect them (the logging HOWTO's "Optimization" switches, measured in
    docs/performance.md).
    """
    logging._srcfile = None  # no stack walk for the caller's file and line
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("anomaly_api")
    for name in _OWNED_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "anomaly_api"]:
            logger.removeHandler(old)
        if name == "uvicorn.error":
            logger.handlers.clear()  # its records propagate to the "uvicorn" handler
            logger.propagate = True
            continue
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
