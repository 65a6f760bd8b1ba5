"""Prediction cache: an in-process LRU (default), Redis or none, behind one ``PredictionCache``."""

from __future__ import annotations

from anomaly_api.config import Settings
from anomaly_api.service.cache.base import (
    BreakerState,
    CacheCounters,
    PredictionCache,
    prediction_keys,
)
from anomaly_api.service.cache.breaker import CircuitBreaker
from anomaly_api.service.cache.disabled import DisabledPredictionCache
from anomaly_api.service.cache.memory import InMemoryPredictionCache
from anomaly_api.service.cache.redis_cache import RedisPredictionCache

__all__ = [
    "BreakerState",
    "CacheCounters",
    "CircuitBreaker",
    "DisabledPredictionCache",
    "InMemoryPredictionCache",
    "PredictionCache",
    "RedisPredictionCache",
    "build_cache",
    "prediction_keys",
]


def build_cache(settings: Settings) -> PredictionCache:
    """The cache ``settings.prediction_cache`` names (Redis only when asked: a Redis URL
    alone keeps the per-process cache, whose look-ups cost no round trip). Never connects."""
    if settings.prediction_cache == "redis":
        return RedisPredictionCache.from_settings(settings)
    if settings.prediction_cache == "off":
        return DisabledPredictionCache()
    return InMemoryPredictionCache(
        max_entries=settings.cache_max_entries, ttl_s=settings.cache_ttl_s
    )
