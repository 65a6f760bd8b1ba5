"""Logging set-up: one JSON object per line (default) or readable text for local use.

Structured fields are passed with ``extra={...}``; the JSON formatter writes every
non-standard record attribute as a top-level key, so the access log line (see
``anomaly_api.api.request_context``) carries request id, route, status, latency, rows,
cache hits and model version as fields a log pipeline can index. Nothing here ever sees
request headers, so API keys cannot reach the logs.
"""

from __future__ import annotations

import logging
import sys
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


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", **extra}`` as one compact JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
