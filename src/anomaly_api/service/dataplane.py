"""``DataPlane``: the one request path of every prediction, free of HTTP.

Any entry point (the ``/predict`` routes today; a protocol router or a stream endpoint
tomorrow) parses its rows and calls ``DataPlane.predict``; it gets typed answers back::

    batch = await dataplane.predict(rows, observation_ids)   # -> BatchAnswer
    batch = await dataplane.predict_columns(X, observation_ids)   # -> ColumnarBatchAnswer

``predict_columns`` (the ``/predict/batch`` route's) gives the same answers kept as the
batch's arrays, encoded to JSON in one pass (``ColumnarBatchAnswer.to_json``): no object
per row anywhere on its path. One call scores the whole batch (cache look-up, one model
call for the rows the cache did not have, cache write), builds the answers, and then
hands a ``ScoredBatch`` to every registered hook. The prediction metrics are the first
hook (``MetricsHook``): they are recorded here and nowhere else. Anything else that must
see every scored row (an access-log note, drift tracking, alarms) is one more hook::

    dataplane.add_hook(lambda scored: drift.observe(scored.X))

Hooks run on the event loop after the answers are built; they must be quick and must not
raise (an exception in a hook is logged and dropped, the caller still gets its answers).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from anomaly_api.service.answers import (
    Answer,
    BatchAnswer,
    ColumnarBatchAnswer,
    Contribution,
    DetectorVerdict,
)
from anomaly_api.service.cache import CacheCounters
from anomaly_api.service.errors import ModelIsTimeAwareError
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.prediction import Prediction, PredictionColumns
from anomaly_api.service.predictor import FeatureRow, Predictor
from anomaly_api.service.runtime import ServiceRuntime

__all__ = ["AnswerHook", "DataPlane", "MetricsHook", "ScoredBatch"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """Everything known about one scored batch, for the hooks."""

    model_version: str
    X: NDArray[np.float64]
    """The rows as scored: float64, shape ``(rows, features)``, in the model's feature order."""
    predictions: Sequence[Prediction] | PredictionColumns
    """One ``Prediction`` per row, or the batch route's columns (iterating them makes the
    ``Prediction``s: prefer ``anomaly_flags`` and ``cache_hits``)."""
    answer: BatchAnswer | ColumnarBatchAnswer
    model_seconds: float | None
    """Time of the model call for the rows the cache did not have (None: all cached)."""

    @property
    def rows(self) -> int:
        """How many rows the batch held."""
        return len(self.predictions)

    @property
    def cache_hits(self) -> int:
        """How many rows the cache answered."""
        if isinstance(self.predictions, PredictionColumns):
            return int(np.count_nonzero(self.predictions.cached))
        return sum(p.cached for p in self.predictions)

    def anomaly_flags(self) -> NDArray[np.bool_]:
        """``is_anomaly`` of every row, in order."""
        if isinstance(self.predictions, PredictionColumns):
            return self.predictions.is_anomaly
        return np.fromiter((p.is_anomaly for p in self.predictions), bool, self.rows)


AnswerHook = Callable[[ScoredBatch], None]
"""Called once per ``DataPlane.predict`` with the scored batch."""


class MetricsHook:
    """Records every prediction metric: rows, outcomes, anomaly rate and model time."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def __call__(self, scored: ScoredBatch) -> None:
        self.metrics.observe_predictions(scored.rows, scored.answer.n_anomalies)
        if scored.model_seconds is not None:
            self.metrics.observe_inference(scored.model_seconds)


def _new_observation_ids(n: int) -> list[str]:
    """``n`` random 128-bit hex ids (uuid4 costs ~2.5 µs each; one urandom call for all)."""
    raw = os.urandom(16 * n).hex()
    return [raw[32 * i : 32 * (i + 1)] for i in range(n)]


def _filled_ids(observation_ids: Sequence[str | None] | None, n: int) -> list[str]:
    """``observation_ids`` (``n`` of them, or None for none) with the missing ones generated."""
    ids: Sequence[str | None] = observation_ids or [None] * n
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
        rows: Sequence[FeatureRow],
        observation_ids: Sequence[str | None] | None = None,
        *,
        label_rows: bool = True,
        top_k: int | None = None,
        predictor: Predictor | None = None,
    ) -> BatchAnswer:
        """Answers for ``rows`` (feature lists or name -> value mappings), in order.

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
        answers = self._answers(predictor, scored.predictions, observation_ids, inference_ms, top_k)
        batch = BatchAnswer(
            predictions=answers,
            n_anomalies=sum(p.is_anomaly for p in scored.predictions),
            model_version=predictor.version,
            inference_ms=inference_ms,
        )
        self.report(
            ScoredBatch(
                predictor.version, scored.X, scored.predictions, batch, scored.model_seconds
            )
        )
        return batch

    async def predict_columns(
        self,
        rows: Sequence[FeatureRow] | NDArray[np.float64],
        observation_ids: Sequence[str | None] | None = None,
        *,
        label_rows: bool = True,
        top_k: int | None = None,
        predictor: Predictor | None = None,
    ) -> ColumnarBatchAnswer:
        """``predict`` for batches: the same answers as arrays, with no object per row
        (``ColumnarBatchAnswer.to_json`` is the ``BatchAnswer``'s JSON). ``rows`` may be a
        float64 matrix already in the model's feature order."""
        predictor = self._point_wise(predictor)
        started = time.perf_counter()
        scored = await predictor.score_rows_columns(rows, label_rows=label_rows)
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
            ScoredBatch(predictor.version, scored.X, predictions, batch, scored.model_seconds)
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

    @staticmethod
    def _answers(
        predictor: Predictor,
        predictions: Sequence[Prediction],
        observation_ids: Sequence[str | None] | None,
        inference_ms: float,
        top_k: int | None = None,
    ) -> list[Answer]:
        """One ``Answer`` per prediction: the one place answers are built."""
        names = predictor.detector_names
        thresholds = predictor.thresholds
        version = predictor.version
        ids = _filled_ids(observation_ids, len(predictions))
        contributions = _sorted_contributions(predictor.feature_names, predictions, top_k)
        return [
            Answer(
                observation_id=oid,
                is_anomaly=prediction.is_anomaly,
                anomaly_score=prediction.anomaly_score,
                confidence=prediction.confidence,
                severity=prediction.severity,
                contributions=row_contributions,
                model_version=version,
                inference_ms=inference_ms,
                detectors={
                    name: DetectorVerdict(score, threshold, vote)
                    for name, score, threshold, vote in zip(
                        names, prediction.scores, thresholds, prediction.votes, strict=True
                    )
                },
                cached=prediction.cached,
            )
            for oid, prediction, row_contributions in zip(
                ids, predictions, contributions, strict=True
            )
        ]


_ARGSORT_MIN_ROWS = 16
"""From this many rows one NumPy argsort of the batch beats a Python sort per row
(measured: 1 row 8 µs in Python against 20 µs through NumPy; 1,000 rows 2.9 ms against 5.9 ms)."""


def _sorted_contributions(
    feature_names: Sequence[str], predictions: Sequence[Prediction], top_k: int | None
) -> list[list[Contribution]]:
    """Each row's contributions, largest share first (ties in feature order), at most
    ``top_k``: one stable argsort of the whole batch's share matrix, not one per row
    (or, for a few rows, Python's stable sort, whose fixed cost is lower)."""
    if len(predictions) < _ARGSORT_MIN_ROWS:
        positions = range(len(feature_names))
        return [
            [
                Contribution(feature_names[i], shares[i])
                for i in sorted(positions, key=shares.__getitem__, reverse=True)[:top_k]
            ]
            for shares in (p.shares for p in predictions)
        ]
    matrix = np.array([p.shares for p in predictions], dtype=np.float64)
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :top_k]
    values = np.take_along_axis(matrix, order, axis=1).tolist()
    return [
        [
            Contribution(feature_names[i], share)
            for i, share in zip(row_order, row_values, strict=True)
        ]
        for row_order, row_values in zip(order.tolist(), values, strict=True)
    ]
