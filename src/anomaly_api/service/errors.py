"""Domain errors of the service layer, free of HTTP.

::

    ServiceError
    ├── ModelNotReadyError      no model is loaded; predictions cannot be served
    ├── InvalidInputError       the caller's data cannot be scored as sent
    │   └── InvalidFeaturesError   wrong count, unknown or missing feature names
    └── ModelReloadError        a new model could not be loaded; the old one keeps serving
        └── ModelVersionNotFoundError   no such version (or no LATEST pointer)

The HTTP layer has its own errors (``anomaly_api.api.errors.ApiError``: body, headers,
keys); ``anomaly_api.api.errors`` maps both families to statuses in one table.
"""

from __future__ import annotations

__all__ = [
    "InvalidFeaturesError",
    "InvalidInputError",
    "ModelNotReadyError",
    "ModelReloadError",
    "ModelVersionNotFoundError",
    "ServiceError",
]


class ServiceError(Exception):
    """Base class of every error the service reports to its callers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelNotReadyError(ServiceError):
    """No model is loaded (it failed to load, or loading has not finished)."""


class InvalidInputError(ServiceError):
    """The request's data is well-formed JSON but cannot be scored."""


class InvalidFeaturesError(InvalidInputError):
    """A feature vector has the wrong length or names features the model does not know."""


class ModelReloadError(ServiceError):
    """The new model could not be loaded or verified; the old one keeps serving."""

    def __init__(self, message: str, *, current_version: str | None) -> None:
        super().__init__(message)
        self.current_version = current_version


class ModelVersionNotFoundError(ModelReloadError):
    """The requested version (or ``LATEST``) does not exist in the artifact directory."""
