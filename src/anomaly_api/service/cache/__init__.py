"""Prediction cache: an in-process LRU (default) or Redis, behind one ``PredictionCache``."""

from __future__ import annotations

from anomaly_api.config import Settings
from anomaly_api.service.cache.base import (
    BreakerState,
    CacheCounters,
    PredictionCache,
    prediction_keys,
)
from anomaly_api.service.cache.breaker import CircuitBreaker
from anomaly_api.service.cache.memory import InMemoryPredictionCache
from anomaly_api.service.cache.redis_cache import RedisPredictionCache

__all__ = [
    "BreakerState",
    "CacheCounters",
    "CircuitBreaker",
    "InMemoryPredictionCache",
    "PredictionCache",
    "RedisPredictionCache",
    "build_cache",
    "prediction_keys",
]


def build_cache(settings: Settings) -> PredictionCache:
    """Redis when ``settings.redis_url`` is set, else the in-process cache. Never connects."""
    if settings.redis_url:
        return RedisPredictionCache.from_settings(settings)
    return InMemoryPredictionCache(
        max_entries=settings.cache_max_entries, ttl_s=settings.cache_ttl_s
    )
