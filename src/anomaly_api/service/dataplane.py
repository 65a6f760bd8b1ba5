"""``DataPlane``: the one request path of every point-wise prediction, free of HTTP.

Every entry point (``/predict``, ``/predict/batch``, the Open Inference Protocol) parses its
rows and calls ``DataPlane.predict``; it gets the answers back as the call's arrays::

    batch = await dataplane.predict(rows, observation_ids)   # -> ColumnarBatchAnswer
    batch.to_json()       # the batch answer's JSON (answer_json(): a one-row call's answer)

One call scores the whole batch (cache look-up, one model call for the rows the cache did
not have, cache write), and then hands a ``ScoredBatch`` to every registered hook. The
prediction metrics are the first hook (``MetricsHook``): they are recorded here and nowhere
else. Anything else that must see every scored row (an access-log note, drift tracking,
alarms) is one more hook::

    dataplane.add_hook(lambda scored: drift.observe(scored.X))

Hooks run on the event loop after the answers are built; they must be quick and must not
raise (an exception in a hook is logged and dropped, the caller still gets its answers).
``StreamPlane`` reports its readings to the same hooks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from anomaly_api.service.answers import ColumnarBatchAnswer
from anomaly_api.service.cache import CacheCounters
from anomaly_api.service.errors import ModelIsTimeAwareError
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.prediction_columns import PredictionColumns
from anomaly_api.service.predictor import FeatureRow, Predictor
from anomaly_api.service.runtime import ServiceRuntime

__all__ = ["AnswerHook", "DataPlane", "MetricsHook", "ScoredBatch"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class ScoredBatch:
    """Everything known about one scored batch, for the hooks."""

    model_version: str
    X: NDArray[np.float64]
    """The rows as scored: float64, shape ``(rows, features)``, in the model's feature order."""
    predictions: PredictionColumns
    n_anomalies: int
    model_seconds: float | None
    """Time of the model call for the rows the cache did not have (None: all cached)."""
    cache_hits: int
    """How many rows the cache answered (counted by whoever scored them)."""

    @property
    def rows(self) -> int:
        """How many rows the batch held."""
        return len(self.predictions)

    def anomaly_flags(self) -> NDArray[np.bool_]:
        """``is_anomaly`` of every row, in order."""
        return self.predictions.is_anomaly


AnswerHook = Callable[[ScoredBatch], None]
"""Called once per ``DataPlane.predict`` with the scored batch."""


class MetricsHook:
    """Records every prediction metric: rows, outcomes, anomaly rate and model time."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def __call__(self, scored: ScoredBatch) -> None:
        self.metrics.observe_predictions(scored.rows, scored.n_anomalies)
        if scored.model_seconds is not None:
            self.metrics.observe_inference(scored.model_seconds)


def _new_observation_ids(n: int) -> list[str]:
    """``n`` random 128-bit hex ids (uuid4 costs ~2.5 µs each; one urandom call for all)."""
    raw = os.urandom(16 * n).hex()
    return [raw[32 * i : 32 * (i + 1)] for i in range(n)]


def _filled_ids(observation_ids: Sequence[str | None] | None, n: int) -> list[str]:
    """``observation_ids`` (``n`` of them, or None for none) with the missing ones generated."""
    if observation_ids is None or not any(observation_ids):  # none given: no merge
        return _new_observation_ids(n)
    if all(observation_ids):  # every one given (ids are never empty): nothing to merge
        return [oid for oid in observation_ids if oid]
    ids: Sequence[str | None] = observation_ids
    missing_ids = iter(_new_observation_ids(sum(oid is None for oid in ids)))
    return [oid or next(missing_ids) for oid in ids]


class DataPlane:
    """Scores batches of rows with the runtime's current model and reports them to hooks."""

    def __init__(self, runtime: ServiceRuntime, metrics: ServiceMetrics | None = None) -> None:
        """With ``metrics``, its prediction metrics and the cache's counters are recorded."""
        self.runtime = runtime
        self.hooks: list[AnswerHook] = []
        if metrics is not None:
            cache = runtime.cache
            metrics.track_cache(cache if isinstance(cache, CacheCounters) else None)
            self.add_hook(MetricsHook(metrics))

    def add_hook(self, hook: AnswerHook) -> None:
        """Call ``hook`` after every scored batch, after the hooks added before it."""
        self.hooks.append(hook)

    def require_ready(self) -> Predictor:
        """The current predictor, or ``ModelNotReadyError``."""
        return self.runtime.require_predictor()

    async def predict(
        self,
        rows: Sequence[FeatureRow] | NDArray[np.float64],
        observation_ids: Sequence[str | None] | None = None,
        *,
        label_rows: bool = True,
        top_k: int | None = None,
        predictor: Predictor | None = None,
    ) -> ColumnarBatchAnswer:
        """Answers for ``rows`` (feature lists, name -> value mappings, or a float64 matrix
        already in the model's feature order), in order.

        ``observation_ids`` (same length, None entries allowed) are echoed; missing ones
        are generated. With ``label_rows`` an ``InvalidFeaturesError`` names the row
        (``observations[3]: ...``). Each answer lists every feature's contribution, or
        only the ``top_k`` largest (the caller checks 1 <= top_k <= features). ``predictor``
        is the ready one the caller already holds; without it, ``ModelNotReadyError`` when
        no model is loaded.
        """
        predictor = self._point_wise(predictor)  # held for the call: a reload cannot split it
        started = time.perf_counter()
        scored = await predictor.score_rows(rows, label_rows=label_rows)
        inference_ms = (time.perf_counter() - started) * 1000.0
        predictions = scored.predictions
        batch = ColumnarBatchAnswer(
            predictions=predictions,
            observation_ids=_filled_ids(observation_ids, len(predictions)),
            feature_names=predictor.feature_names,
            detector_names=predictor.detector_names,
            thresholds=predictor.thresholds,
            model_version=predictor.version,
            inference_ms=inference_ms,
            top_k=top_k,
        )
        self.report(
            ScoredBatch(
                predictor.version,
                scored.X,
                predictions,
                batch.n_anomalies,
                scored.model_seconds,
                scored.cache_hits,
            )
        )
        return batch

    def _point_wise(self, predictor: Predictor | None) -> Predictor:
        """``predictor`` (or the ready one), refused when the model is time-aware."""
        predictor = self.require_ready() if predictor is None else predictor
        if predictor.time_aware is not None:
            raise ModelIsTimeAwareError(
                f"model {predictor.version!r} is time-aware (window "
                f"{predictor.time_aware.history_needed} readings): it scores streams, not "
                "single readings; use POST /predict/window or POST /streams/{stream_id}/readings"
            )
        return predictor

    def report(self, event: ScoredBatch) -> None:
        """Hand ``event`` to every hook (also called by ``StreamPlane`` for stream readings,
        so the prediction metrics count every scored reading, whichever route scored it)."""
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # a broken observer must not cost the caller its answers
                _log.exception("answer hook %r failed", hook)
