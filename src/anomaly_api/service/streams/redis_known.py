"""What a replica knows of the Redis streams it wrote last: an append sent with its alarm
state in one script call.

After this replica has written a stream's window and then its alarm state, it keeps the
window's stored value and the state's JSON (``KnownStreams``). The stream's next append
is then scored from the value the append script would write (``predict``: the same bytes,
so the same window bit for bit) and from the alarm state parsed from that JSON (what
Redis would return), and sent with the alarm state's compare-and-set in one call, which
applies both only when the stored window still carries this replica's token. Otherwise
the script only appends, as alone, and the readings are scored again from the window it
returns (``StreamWindowMoved``). A stream whose appends also reach other replicas (its
token moved) is not kept for its next ``SKIP`` writes here, so it does not pay for a
scoring thrown away at every append.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from anomaly_api.service.streams.base import FollowSpec

__all__ = ["HEADER", "MAX_KNOWN", "SKIP", "KnownStreams", "Receipt", "predict"]

HEADER = struct.Struct("<BHdd8sH")
"""A stored window's header: version, n_features, total, first timestamp, the last
append's token, model-key length (``redis_store``'s layout)."""

MAX_KNOWN = 1024
"""Streams a replica keeps (the most recently written): ~ one window value and one alarm
state each, about 6 KB for 8 channels and a window of 60."""

SKIP = 32
"""Writes of a stream not kept after its window moved to another replica's append."""


@dataclass(slots=True)
class Receipt:
    """A Redis store's record of one append (``StreamWindow.receipt``)."""

    value: bytes
    """The window's stored value after the append."""
    records: NDArray[np.float64]
    model_key: str
    window: int
    keys: list[str] | None = None
    args: list[bytes | str | int] | None = None
    """The append script's keys and arguments while it is not sent (None once sent)."""
    token: bytes = b""
    """The token the stored window carries when the append is to follow it."""
    follow: FollowSpec | None = None
    """How the append moves the followed state (None: it leaves it)."""
    followed: bytes = b""
    """The stored followed state after the append, as the script stores it (before and
    after a following append); empty when not known."""


class KnownStreams:
    """The window value and alarm state JSON of the streams this replica wrote last, by
    window key (one bound for a store and its per-model namespaces)."""

    def __init__(self, max_streams: int = MAX_KNOWN, skip: int = SKIP) -> None:
        self.max_streams = max_streams
        self.skip = skip
        self._known: OrderedDict[str, tuple[bytes, bytes, bytes]] = OrderedDict()
        self._skipped: dict[str, int] = {}

    def get(self, key: str) -> tuple[bytes, bytes, bytes] | None:
        """The stream's window value, alarm state and followed state (empty when not
        known) as this replica wrote them last."""
        return self._known.get(key)

    def remember(self, key: str, value: bytes, alarm: bytes, followed: bytes = b"") -> None:
        """This replica wrote ``value`` (an append) and ``followed`` (the followed state
        the append script stored, empty when not known), then ``alarm`` (its alarm state)."""
        left = self._skipped.get(key)
        if left is not None:
            if left > 1:
                self._skipped[key] = left - 1
            else:
                del self._skipped[key]
            return
        self._known[key] = (value, alarm, followed)
        self._known.move_to_end(key)
        if len(self._known) > self.max_streams:
            self._known.popitem(last=False)

    def forget(self, key: str, *, moved: bool = False) -> None:
        """Drop what is kept of the stream; ``moved``: another replica appended to it."""
        self._known.pop(key, None)
        if moved:
            if len(self._skipped) >= self.max_streams:
                self._skipped.clear()
            self._skipped[key] = self.skip

    def clear(self) -> None:
        """Forget every stream."""
        self._known.clear()
        self._skipped.clear()


def predict(
    value: bytes, model: bytes, records: NDArray[np.float64], window: int, token: bytes
) -> bytes | None:
    """The value the append script writes when it appends ``records`` (float64 records,
    timestamp first) with ``token`` to the stored ``value``, trimmed to ``window``
    readings; None when it would not append them to it (another model key or feature
    count, or readings not after the stored ones: the script answers those itself)."""
    _version, n_features, total, first, _token, key_len = HEADER.unpack_from(value)
    start = HEADER.size + key_len
    if value[HEADER.size : start] != model or n_features != records.shape[1] - 1:
        return None
    size = 8 * (n_features + 1)
    (last,) = struct.unpack_from("<d", value, len(value) - size)
    if not records[0, 0] > last:
        return None
    body = value[start:] + records.tobytes()
    keep = window * size
    if len(body) > keep:
        body = body[len(body) - keep :]
    return HEADER.pack(1, n_features, total + len(records), first, token, key_len) + model + body
