"""Domain errors of the service layer, free of HTTP.

::

    ServiceError
    ├── ModelNotReadyError      no model is loaded; predictions cannot be served
    ├── InvalidInputError       the caller's data cannot be scored as sent
    │   ├── InvalidFeaturesError   wrong count, unknown or missing feature names
    │   ├── InvalidTimestampsError unparsable timestamps, or not one per reading
    │   └── ModelIsTimeAwareError  a single reading sent to a model that scores streams
    ├── StreamNotFoundError     no such stream (never started, expired or deleted)
    ├── EventNotFoundError      no such event of a stream (or the stream is gone)
    ├── ModelNotFoundError      no model of that name (or no such alias or version of it)
    ├── ModelConflictError      a registry change that would break an alias (409)
    └── ModelReloadError        a new model could not be loaded; the old one keeps serving
        └── ModelVersionNotFoundError   no such version (or no LATEST pointer)

The HTTP layer has its own errors (``anomaly_api.api.errors.ApiError``: body, headers,
keys); ``anomaly_api.api.errors`` maps both families to statuses in one table.
"""

from __future__ import annotations

__all__ = [
    "EventNotFoundError",
    "InvalidFeaturesError",
    "InvalidInputError",
    "InvalidTimestampsError",
    "ModelConflictError",
    "ModelIsTimeAwareError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelReloadError",
    "ModelVersionNotFoundError",
    "ServiceError",
    "StreamNotFoundError",
]


class ServiceError(Exception):
    """Base class of every error the service reports to its callers.

    ``retry_after_s``, when set, is how long a caller should wait before trying again.
    """

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class ModelNotReadyError(ServiceError):
    """No model is loaded (it failed to load, or loading has not finished)."""


class InvalidInputError(ServiceError):
    """The request's data is well-formed JSON but cannot be scored."""


class InvalidFeaturesError(InvalidInputError):
    """A feature vector has the wrong length or names features the model does not know."""


class InvalidTimestampsError(InvalidInputError):
    """Timestamps that cannot be parsed, or not exactly one per reading."""


class ModelIsTimeAwareError(InvalidInputError):
    """The loaded model is time-aware: it scores windows of a stream, not lone readings."""


class StreamNotFoundError(ServiceError):
    """The stream does not exist (never started, expired after idling, or deleted)."""


class EventNotFoundError(ServiceError):
    """The stream has no such event (never had it, dropped as the oldest, or restarted)."""


class ModelNotFoundError(ServiceError):
    """No model of that name, or the model has no such alias or version."""


class ModelConflictError(ServiceError):
    """The registry change would break an alias (a version it names, nothing to roll back to)."""


class ModelReloadError(ServiceError):
    """The new model could not be loaded or verified; the old one keeps serving."""

    def __init__(self, message: str, *, current_version: str | None) -> None:
        super().__init__(message)
        self.current_version = current_version


class ModelVersionNotFoundError(ModelReloadError):
    """The requested version (or ``LATEST``) does not exist in the artifact directory."""
