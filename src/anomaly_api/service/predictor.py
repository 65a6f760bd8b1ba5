"""Predictor: feature rows -> float64 matrix -> cache or ensemble -> ``PredictionColumns``.

The columns hold the decision, the detectors' scores and votes, the severity and each
feature's share of the anomaly, all from one model call (the scorer's ``explain``).

One loaded model version, used by ``DataPlane`` (the request path, which adds the answers
and the metrics). One call handles a whole batch, one row or a thousand alike: one cache
round trip for all rows, one vectorised model call for the rows the cache did not have,
one cache write for the fresh answers.

Where scoring runs is a deliberate choice (``offload_min_rows``): a few rows are scored
inline on the event loop, since a thread hop costs more than the arithmetic; larger
batches go to a worker thread so they do not stall other requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio.to_thread
import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import Artifact, ArtifactError, TimeAwareArtifact
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.ensemble import EnsembleOutput
from anomaly_api.detection.time_aware import TimeAwareModel
from anomaly_api.service.cache import PredictionCache, prediction_keys
from anomaly_api.service.errors import InvalidFeaturesError
from anomaly_api.service.prediction_columns import PredictionCodec, PredictionColumns
from anomaly_api.service.scorer import Scorer
from anomaly_api.training.references import ModelReferences, TunableDetector, tunable_detector

__all__ = ["FeatureRow", "Predictor", "ScoredRows"]

FeatureRow = Sequence[float] | Mapping[str, float]
"""Feature values in the model's order, or keyed by feature name."""


@dataclass(slots=True)
class ScoredRows:
    """The rows of one call as a matrix, their predictions, and the model call's time."""

    X: NDArray[np.float64]
    predictions: PredictionColumns
    model_seconds: float | None
    """Seconds of the model call for the rows the cache did not have; None when all hit."""
    cache_hits: int
    """How many rows the cache answered."""


class Predictor:
    """Serves one loaded model version; safe to share between concurrent requests."""

    def __init__(
        self,
        artifact: Artifact | TimeAwareArtifact,
        *,
        scorer: Scorer,
        cache: PredictionCache,
        cache_prefix: str,
        offload_min_rows: int,
        references: ModelReferences | None = None,
    ) -> None:
        """``references``: the version's verified drift and score references, if kept."""
        manifest = artifact.manifest
        self.references = references or ModelReferences(drift=None, scores=None)
        self.manifest = manifest
        self.version = manifest.version
        self.feature_names: tuple[str, ...] = tuple(manifest.feature_names)
        self.time_aware: TimeAwareModel | None = None
        """The time-aware model (it scores streams only); None for a point-wise model."""
        if isinstance(artifact, TimeAwareArtifact):
            # Warm-up readings are scored by the model's point-wise ensemble; ``model`` is
            # that ensemble, so the point-wise machinery (to_matrix, score) still works.
            self.time_aware = artifact.model
            self.model: AnomalyEnsemble = artifact.model.pointwise_
            self.detector_names: tuple[str, ...] = tuple(self.model.detectors_)
            self.thresholds: tuple[float, ...] = tuple(float(t) for t in self.model.offsets_)
        else:
            self.model = artifact.model
            self.detector_names = tuple(d.name for d in manifest.detectors)
            self.thresholds = tuple(float(t) for t in self.model.offsets_)
        self.tunable: TunableDetector = tunable_detector(artifact.model)
        """The detector whose thresholds decide and can move (the ensemble, or a
        time-aware model's window detector): what the score reference describes."""
        listed = manifest.detectors
        if [d.name for d in listed] != list(self.tunable.names) or not np.allclose(
            self.tunable.thresholds, [d.threshold for d in listed], rtol=0.0, atol=1e-12
        ):
            raise ArtifactError(
                f"model {self.version!r}: the manifest's detector thresholds do not match the model"
            )
        self._scorer = scorer
        self._cache = cache
        self._cache_prefix = cache_prefix
        self._offload_min_rows = offload_min_rows
        self._codec = PredictionCodec(len(self.detector_names), len(self.feature_names))
        self._positions = {name: i for i, name in enumerate(self.feature_names)}

    @property
    def kind(self) -> str:
        """``"time-aware"`` or ``"point-wise"``: which kind of model answers."""
        return "point-wise" if self.time_aware is None else "time-aware"

    @property
    def scorer(self) -> Scorer:
        """What scores the point-wise rows (the compiled kernel, or the model itself)."""
        return self._scorer

    @property
    def n_features(self) -> int:
        """How many features each row must have."""
        return len(self.feature_names)

    def to_matrix(
        self, rows: Sequence[FeatureRow] | NDArray[np.float64], *, label_rows: bool = False
    ) -> NDArray[np.float64]:
        """Rows as a C-contiguous float64 matrix in the model's feature order.

        Raises ``InvalidFeaturesError`` for a wrong feature count or unknown/missing
        feature names; with ``label_rows`` its message names the row (``observations[3]``).
        ``rows`` may already be a 2-D float64 array (the batch route parses bodies into
        one); it is then used as it is, and a wrong width is the first row's error.
        """
        if isinstance(rows, np.ndarray):
            if rows.ndim == 2 and rows.shape[1] == self.n_features:
                return np.ascontiguousarray(rows, dtype=np.float64)
            rows = list(rows)
        ordered: list[Sequence[float]] = []
        for index, row in enumerate(rows):
            try:
                ordered.append(self._ordered(row))
            except InvalidFeaturesError as exc:
                if not label_rows:
                    raise
                raise InvalidFeaturesError(f"observations[{index}]: {exc.message}") from None
        return np.array(ordered, dtype=np.float64)

    def _ordered(self, row: FeatureRow) -> Sequence[float]:
        if isinstance(row, Mapping):
            unknown = [name for name in row if name not in self._positions]
            if unknown:
                raise InvalidFeaturesError(
                    f"unknown feature names {unknown}; expected {list(self.feature_names)}"
                )
            missing = [name for name in self.feature_names if name not in row]
            if missing:
                raise InvalidFeaturesError(f"missing feature names {missing}")
            return [row[name] for name in self.feature_names]
        if len(row) != self.n_features:
            raise InvalidFeaturesError(f"expected {self.n_features} features, got {len(row)}")
        return row

    async def score_rows(
        self, rows: Sequence[FeatureRow] | NDArray[np.float64], *, label_rows: bool = False
    ) -> ScoredRows:
        """Predictions for ``rows``, in order, from the cache where it has them: one cache
        read and one write, the hits decoded and the other rows scored as arrays."""
        X = self.to_matrix(rows, label_rows=label_rows)
        n = X.shape[0]
        keys = prediction_keys(self._cache_prefix, self.version, X)
        found = await self._cache.get_many(keys)
        valid = self._codec.valid
        hit = [blob is not None and valid(blob) for blob in found]
        hits = [i for i, found_it in enumerate(hit) if found_it]
        missing = [i for i, found_it in enumerate(hit) if not found_it]
        parts: list[tuple[NDArray[np.intp] | slice, PredictionColumns]] = []
        if hits:
            blobs = [found[i] for i in hits]
            where = slice(None) if len(hits) == n else np.array(hits, dtype=np.intp)
            parts.append((where, self._codec.decode(blobs)))  # type: ignore[arg-type]
        model_seconds = None
        if missing:
            todo = X if len(missing) == n else X[missing]
            started = time.perf_counter()
            fresh = await self._score(todo)
            model_seconds = time.perf_counter() - started
            todo_keys = keys if len(missing) == n else [keys[i] for i in missing]
            await self._cache.set_many(dict(zip(todo_keys, self._codec.encode(fresh), strict=True)))
            parts.append((slice(None) if len(missing) == n else np.array(missing), fresh))
        if len(parts) == 1:
            return ScoredRows(X, parts[0][1], model_seconds, len(hits))
        return ScoredRows(X, PredictionColumns.merged(n, parts), model_seconds, len(hits))

    async def _score(self, X: NDArray[np.float64]) -> PredictionColumns:
        if X.shape[0] >= self._offload_min_rows:
            return await anyio.to_thread.run_sync(self.score, X)
        return self.score(X)

    def score(self, X: NDArray[np.float64]) -> PredictionColumns:
        """Score a float64 matrix with the model, bypassing the cache (blocking).

        Extreme but finite readings (say 1e308) overflow the detectors' distances; those
        are not errors but very abnormal rows, so numpy's overflow warnings are silenced
        here and infinite scores are clamped to the largest double (JSON has no infinity).
        An output the scorer marks ``finite`` needs neither check.
        """
        try:
            with np.errstate(all="ignore"):
                out = self._scorer.explain(X)
                if out.finite and out.contributions is not None:
                    scores, anomaly_score, shares = out.scores, out.anomaly_score, out.contributions
                else:
                    scores, anomaly_score, shares = _clipped_or_refused(out)
        except ArithmeticError as exc:
            raise InvalidFeaturesError(_TOO_EXTREME) from exc
        return PredictionColumns(
            is_anomaly=out.is_anomaly,
            anomaly_score=anomaly_score,
            confidence=out.confidence,
            severity=out.severity,
            scores=scores,
            votes=out.votes,
            shares=shares,
            cached=np.zeros(X.shape[0], dtype=bool),
        )


def _clipped_or_refused(
    out: EnsembleOutput,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``out``'s scores and anomaly scores with infinities clamped to the largest double,
    and its shares; ``InvalidFeaturesError`` where any of them is NaN (or no shares)."""
    shares, scores, anomaly_score = out.contributions, out.scores, out.anomaly_score
    # One reduction each: shares lie in [0, 1], so their sum is NaN exactly when one is; a
    # finite sum of the scores means each is finite (else, or when the sum overflows, each
    # value is checked below).
    if shares is None or math.isnan(np.add.reduce(shares, axis=None)):
        raise InvalidFeaturesError(_TOO_EXTREME)
    total = np.add.reduce(scores, axis=None) + np.add.reduce(anomaly_score, axis=None)
    if math.isfinite(total) or (np.isfinite(scores).all() and np.isfinite(anomaly_score).all()):
        return scores, anomaly_score, shares
    if np.isnan(scores).any() or np.isnan(anomaly_score).any():
        raise InvalidFeaturesError(_TOO_EXTREME)
    clipped = np.clip(scores, -_MAX_DOUBLE, _MAX_DOUBLE)
    return clipped, np.clip(anomaly_score, -_MAX_DOUBLE, _MAX_DOUBLE), shares


_MAX_DOUBLE = float(np.finfo(np.float64).max)

_TOO_EXTREME = "feature values are too extreme to be scored"
