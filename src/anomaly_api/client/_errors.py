"""The exceptions the client raises, both ``Exception`` subclasses::

    Exception
    ├── AnomalyApiError         the server answered an error status (after the retries of
    │                           429 and 503): ``status_code``, ``code``, ``message``,
    │                           ``request_id``, ``details``
    └── AnomalyConnectionError  the server could not be reached, after the retries

Bad arguments raise ``ValueError``, ``TypeError`` or ``KeyError`` before anything is sent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnomalyApiError", "AnomalyConnectionError"]


class AnomalyApiError(Exception):
    """The server answered with an error: its status, ``code``, ``message`` and request id."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details


class AnomalyConnectionError(Exception):
    """The server could not be reached, after every retry."""
