"""The cache contract shared by every backend, and the cache key of a feature vector.

The key is the model version plus a hash of the canonical float64 bytes of the row, never
the request JSON: an ``observation_id`` cannot defeat the cache, equal readings written
differently (``1`` vs ``1.0``, ``-0.0`` vs ``0.0``) share a key, and a new model version
never sees the old version's answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import blake2b
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

BreakerState = Literal["closed", "open", "half_open"]

_DIGEST_BYTES = 16  # 128-bit blake2b: collisions are out of reach for any cache size.
_ZERO = np.zeros(())
_ZERO.flags.writeable = False
"""0.0 as a 0-d array: as an operand NumPy takes it as it is (a Python float is converted
to a NumPy scalar on every call)."""


@runtime_checkable
class PredictionCache(Protocol):
    """Bytes-in, bytes-out cache of serialized predictions. No method ever raises."""

    @property
    def backend(self) -> str:
        """``"memory"``, ``"redis"`` or ``"off"`` (the ``prediction_cache`` setting)."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order, ``None`` for a miss; all ``None`` on failure."""
        ...

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items`` with the configured TTL; does nothing on failure."""
        ...

    async def check(self) -> bool:
        """Actively probe the backend (for ``/health``); Redis: closes or opens the breaker."""
        ...

    async def close(self) -> None:
        """Release connections; the cache is not used afterwards."""
        ...


@runtime_checkable
class CacheCounters(Protocol):
    """Counters every backend keeps, for the metrics exporter (monotonic except the state)."""

    hits: int
    misses: int
    errors: int
    skipped: int

    @property
    def breaker_state(self) -> BreakerState:
        """``"closed"`` when calls go through, ``"open"`` while they are skipped."""
        ...


def prediction_keys(prefix: str, model_version: str, X: NDArray[np.float64]) -> list[str]:
    """Cache keys of the rows of ``X`` (shape ``(n_samples, n_features)``), in order.

    Rows are converted to contiguous float64 once and ``-0.0`` is normalised to ``0.0``
    (IEEE ``-0.0 + 0.0 == +0.0``), so equal readings share a key.
    """
    rows = np.ascontiguousarray(X, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {rows.shape}")
    rows = rows + _ZERO
    head = f"{prefix}{model_version}:"
    # Each row of a C-contiguous array is itself contiguous: hashed through the buffer protocol.
    return [head + blake2b(row, digest_size=_DIGEST_BYTES).hexdigest() for row in rows]
