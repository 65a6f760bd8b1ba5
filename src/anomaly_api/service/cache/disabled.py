"""The cache of ``ANOMALY_PREDICTION_CACHE=off``: stores nothing, so every row is scored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from anomaly_api.service.cache.base import BreakerState


class DisabledPredictionCache:
    """Every lookup misses and every write is dropped.

    The misses are still counted, one per row, so ``anomaly_cache_operations_total``
    keeps counting the rows the model scored and a hit-ratio panel reads 0, not no data.
    """

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.skipped = 0

    @property
    def backend(self) -> str:
        """Always ``"off"``."""
        return "off"

    @property
    def breaker_state(self) -> BreakerState:
        """Always ``"closed"``; present so every backend exports the same counters."""
        return "closed"

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """A miss for each key."""
        self.misses += len(keys)
        return [None] * len(keys)

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        """Nothing is stored."""

    async def check(self) -> bool:
        """Always true: there is nothing to be down."""
        return True

    async def close(self) -> None:
        """Nothing to release."""
