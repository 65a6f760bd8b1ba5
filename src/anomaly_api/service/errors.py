"""Domain errors of the service layer, free of HTTP.

::

    ServiceError
    ├── ModelNotReadyError      no model is loaded; predictions cannot be served
    └── InvalidInputError       the caller's data cannot be scored as sent
        ├── InvalidFeaturesError   wrong count, unknown or missing feature names
        ├── BatchSizeError         more rows than the configured cap
        └── ObservationIdError     observation_id longer than the configured limit

``anomaly_api.api.errors`` maps each class to an HTTP status in one table.
"""

from __future__ import annotations

__all__ = [
    "BatchSizeError",
    "InvalidFeaturesError",
    "InvalidInputError",
    "ModelNotReadyError",
    "ObservationIdError",
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


class BatchSizeError(InvalidInputError):
    """A batch holds more rows than ``Settings.max_batch_rows``."""


class ObservationIdError(InvalidInputError):
    """An ``observation_id`` is longer than ``Settings.max_observation_id_length``."""
