"""The running service's resources: settings, the prediction cache and the current model.

Built by the app's lifespan and closed after it. ``predictor`` is swapped as a whole
(one attribute assignment), so a request that already holds a ``Predictor`` finishes on
the model it started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from typing import Literal

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
from anomaly_api.config import Settings
from anomaly_api.service.cache import PredictionCache, build_cache
from anomaly_api.service.errors import ModelNotReadyError
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.scorer import build_scorer
from anomaly_api.service.streams import StreamStore, build_stream_store
from anomaly_api.training.references import load_references

__all__ = ["HealthReport", "ServiceRuntime"]

_log = logging.getLogger(__name__)


def freeze_long_lived(generation: int = 2) -> None:
    """Move what is alive now (a loaded model, the start-up objects) out of the garbage
    collector's reach, after collecting ``generation``.

    This is the service's own process, not a library's host: full collections walking the
    ~130k long-lived objects of the imports and the models were the main source of its tail
    latency, and with many models loaded the pause grew with the fleet. Reference counting
    still frees a model once it is unloaded.
    """
    gc.collect(generation)
    gc.freeze()


@dataclass(frozen=True)
class HealthReport:
    """What ``/health`` reports."""

    status: Literal["ok", "degraded", "unavailable"]
    model_loaded: bool
    model_version: str | None
    cache_backend: str
    cache_ok: bool
    uptime_s: float
    streams_backend: str = "memory"
    streams_ok: bool = True
    """False while the Redis stream store is unreachable and streams live in process memory."""


class ServiceRuntime:
    """Owns the cache and the loaded model for the lifetime of the app."""

    def __init__(
        self, settings: Settings, cache: PredictionCache, streams: StreamStore | None = None
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.streams: StreamStore = streams or build_stream_store(settings)
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self._started = time.monotonic()

    @classmethod
    def start(cls, settings: Settings) -> ServiceRuntime:
        """Open the cache and load the configured model; a load failure is kept, not raised.

        Afterwards the start-up objects are moved out of the garbage collector's reach
        (``freeze_long_lived``).
        """
        runtime = cls(settings, build_cache(settings))
        runtime.load_model()
        freeze_long_lived()
        return runtime

    def build_predictor(self, version: str | None) -> Predictor:
        """Load and verify ``version`` (``LATEST`` when None) into a predictor on this cache.

        Raises whatever loading raises (``ArtifactError`` and its kin); nothing is swapped.
        """
        settings = self.settings
        artifact = load_any_artifact(
            settings.artifacts_dir, version, on_version_mismatch=settings.on_version_mismatch
        )
        if isinstance(artifact, TimeAwareArtifact):
            pointwise = artifact.model.pointwise_
            scorer = build_scorer(pointwise, settings.inference_backend)
            artifact.model.set_pointwise_scorer(scorer)  # warm-up readings, same numbers
        else:
            scorer = build_scorer(artifact.model, settings.inference_backend)
        predictor = Predictor(
            artifact,
            scorer=scorer,
            cache=self.cache,
            cache_prefix=settings.cache_prefix,
            offload_min_rows=settings.offload_min_rows,
            references=load_references(artifact.path, artifact.manifest),
        )
        _log.info("model %s loaded from %s", predictor.version, artifact.path)
        return predictor

    def load_model(self) -> None:
        """Serve ``settings.model_version``; on failure keep serving nothing and say why."""
        try:
            self.predictor = self.build_predictor(self.settings.model_version)
        except Exception as exc:  # any failure leaves the service up and reporting it
            self.load_error = f"{type(exc).__name__}: {exc}"
            _log.exception("model could not be loaded; serving without a model")
            return
        self.load_error = None

    def require_predictor(self) -> Predictor:
        """The current predictor, or ``ModelNotReadyError`` saying why there is none."""
        predictor = self.predictor
        if predictor is None:
            reason = self.load_error or "the model is still loading"
            raise ModelNotReadyError(f"no model is loaded ({reason})")
        return predictor

    async def warm_up(self) -> None:
        """Open the Redis connections before the first request needs them (one probe of the
        cache and of the stream store each, within ``redis_connect_timeout_s``; a cache not
        in Redis answers at once); a Redis that is down only opens the breakers, as a failed
        probe does."""
        await asyncio.gather(self.cache.check(), self.streams.check())

    async def health(self) -> HealthReport:
        """Model readiness plus an active probe of the cache."""
        predictor = self.predictor
        cache_ok = await self.cache.check()
        streams_ok = await self.streams.check()
        if predictor is None:
            status: Literal["ok", "degraded", "unavailable"] = "unavailable"
        else:
            status = "ok" if cache_ok and streams_ok else "degraded"
        return HealthReport(
            status=status,
            model_loaded=predictor is not None,
            model_version=None if predictor is None else predictor.version,
            cache_backend=self.cache.backend,
            cache_ok=cache_ok,
            uptime_s=time.monotonic() - self._started,
            streams_backend=self.streams.backend,
            streams_ok=streams_ok,
        )

    async def close(self) -> None:
        """Close the cache and hand the frozen objects back to the garbage collector."""
        await self.cache.close()
        await self.streams.close()
        gc.unfreeze()
