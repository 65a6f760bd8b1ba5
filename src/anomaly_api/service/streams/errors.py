"""Errors of the stream store, free of HTTP; each is the caller's fault except capacity.

::

    ServiceError                        (anomaly_api.service.errors)
    ├── StreamCapacityError             the live-stream bound is reached (429/503)
    └── InvalidInputError
        ├── InvalidStreamIdError        the id does not match ``STREAM_ID_PATTERN``
        ├── InvalidReadingsError        shape, NaN/inf, feature count of the stream
        └── StreamOrderError            duplicate or out-of-order timestamp (409)

A store raises nothing else: Redis failures fall back to process memory (``degraded``).
Every error leaves the stream exactly as it was.
"""

from __future__ import annotations

from anomaly_api.service.errors import InvalidInputError, ServiceError

__all__ = [
    "InvalidReadingsError",
    "InvalidStreamIdError",
    "StreamCapacityError",
    "StreamOrderError",
]


class InvalidStreamIdError(InvalidInputError):
    """A stream id that does not match ``STREAM_ID_PATTERN``."""


class InvalidReadingsError(InvalidInputError):
    """Readings that cannot be appended: shape, non-finite values or timestamps, or a
    feature count other than the one the stream's window holds under the same model key."""


class StreamOrderError(InvalidInputError):
    """A timestamp not strictly later than the one before it (duplicate or out of order).

    Attributes
    ----------
    timestamp : float
        The offending timestamp (epoch seconds).
    previous : float
        The timestamp it had to exceed: the stream's last one, or the reading before it
        in the same call.
    index : int
        Position of the offending reading in the call's readings.
    """

    def __init__(
        self,
        *,
        stream_id: str,
        timestamp: float,
        previous: float,
        index: int,
        shown: tuple[str, str] | None = None,
    ) -> None:
        kind = "duplicate" if timestamp == previous else "out-of-order"
        said, before = shown if shown is not None else (repr(timestamp), repr(previous))
        super().__init__(
            f"stream {stream_id!r}: {kind} timestamp {said} at reading {index} "
            f"(must be later than {before}); nothing was appended"
        )
        self.stream_id = stream_id
        self.timestamp = timestamp
        self.previous = previous
        self.index = index

    def showing(self, timestamp: str, previous: str) -> StreamOrderError:
        """The same error with the timestamps written as given (e.g. as the client sent them)."""
        return StreamOrderError(
            stream_id=self.stream_id,
            timestamp=self.timestamp,
            previous=self.previous,
            index=self.index,
            shown=(timestamp, previous),
        )


class StreamCapacityError(ServiceError):
    """The store holds its maximum number of live streams; a new stream cannot start.

    Existing streams keep working; a slot frees when a stream idles out or is deleted.
    """

    def __init__(self, max_streams: int, *, retry_after_s: int | None = None) -> None:
        super().__init__(
            f"the stream store is full ({max_streams} live streams); "
            "retry when idle streams have expired",
            retry_after_s=retry_after_s,
        )
        self.max_streams = max_streams
