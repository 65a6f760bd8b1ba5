"""Scoring a feature matrix into the answer's columns, as the service does.

``ChunkScorer`` runs the service's own fast path (``build_scorer(...).detector_scores``
then ``model.combine``, as ``Predictor.score``) on a whole chunk, split over threads: the
compiled kernel releases the GIL. ``worker_scorer`` is the cached
loader of the distributed engine: one model load per worker process and version.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import Artifact, load_artifact
from anomaly_api.client import answer_columns
from anomaly_api.data.errors import DataError
from anomaly_api.detection.fast import TooExtremeError
from anomaly_api.service.scorer import Scorer, build_scorer

Answers = dict[str, NDArray[Any]]
"""The answer's columns for a chunk, by name, in ``answer_columns`` order."""

TOO_EXTREME: Final = "feature values are too extreme to be scored"
_MAX_DOUBLE: Final = float(np.finfo(np.float64).max)
MIN_ROWS_PER_THREAD: Final = 2_048
"""Below this many rows per thread a chunk is scored in one call (threads cost more)."""

LOADS: dict[tuple[str, str], int] = {}
"""How many times this process loaded each (artifacts dir, version): the engine tests
read it on every worker to check the model is loaded once per worker."""


class ChunkScorer:
    """One loaded model version, scoring float64 matrices into answer columns."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        threads: int | None = None,
        backend: Literal["fast", "numpy", "sklearn"] = "fast",
    ) -> None:
        self.model = artifact.model
        self.version = artifact.manifest.version
        self.feature_names: tuple[str, ...] = tuple(artifact.manifest.feature_names)
        self.detector_names: tuple[str, ...] = tuple(d.name for d in artifact.manifest.detectors)
        self.columns: list[str] = answer_columns(self.detector_names)
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self._scorer: Scorer = build_scorer(self.model, backend)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def close(self) -> None:
        """Stop the scoring threads."""
        if self._pool is not None:
            self._pool.shutdown()

    def answers(self, X: NDArray[np.float64]) -> Answers:
        """The answer's columns for the rows of ``X`` (C-contiguous float64, validated)."""
        parts = 1 if self._pool is None else min(self.threads, len(X) // MIN_ROWS_PER_THREAD)
        if parts <= 1 or self._pool is None:
            scores = self._detector_scores(X)
        else:
            slices = np.array_split(X, parts)
            scores = np.concatenate(list(self._pool.map(self._detector_scores, slices)))
        out = self.model.combine(scores)
        if np.isnan(out.scores).any() or np.isnan(out.anomaly_score).any():
            raise DataError(TOO_EXTREME)
        columns: Answers = {
            "is_anomaly": out.is_anomaly,
            "anomaly_score": _clamped(out.anomaly_score),
            "confidence": out.confidence,
        }
        # Later answer fields (severity, contributions) are added here, and named in
        # anomaly_api.client.answer_columns; the writer and the client follow.
        clamped = _clamped(out.scores)
        for i, name in enumerate(self.detector_names):
            columns[f"{name}_score"] = np.ascontiguousarray(clamped[:, i])
        return columns

    def _detector_scores(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        try:
            with np.errstate(all="ignore"):
                return self._scorer.detector_scores(np.ascontiguousarray(X))
        except TooExtremeError as exc:  # distances overflow: refused like NaN scores
            raise DataError(TOO_EXTREME) from exc


def _clamped(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values`` with ±inf replaced by ±the largest double (as the service answers)."""
    if np.isfinite(values).all():
        return values
    return np.clip(values, -_MAX_DOUBLE, _MAX_DOUBLE)


def load_scorer(
    artifacts_dir: Path, version: str | None, *, threads: int | None = None
) -> ChunkScorer:
    """Load a model version (``LATEST`` if None) and build its scorer with the configured
    ``ANOMALY_INFERENCE_BACKEND``, as the service does."""
    from anomaly_api.config import get_settings

    settings = get_settings()
    artifact = load_artifact(
        artifacts_dir, version, on_version_mismatch=settings.on_version_mismatch
    )
    key = (str(artifacts_dir), artifact.manifest.version)
    LOADS[key] = LOADS.get(key, 0) + 1
    return ChunkScorer(artifact, threads=threads, backend=settings.inference_backend)


@functools.lru_cache(maxsize=4)
def worker_scorer(artifacts_dir: str, version: str, threads: int) -> ChunkScorer:
    """The scorer of a distributed worker, loaded on its first task and then reused."""
    return load_scorer(Path(artifacts_dir), version, threads=threads)


def score_on_worker(
    artifacts_dir: str, version: str, X: NDArray[np.float64], threads: int = 1
) -> Answers:
    """A distributed task: the answer columns of one chunk's feature matrix."""
    return worker_scorer(artifacts_dir, version, threads).answers(X)


def worker_loads() -> dict[str, int]:
    """This process's model loads, as ``{"dir@version": count}`` (for tests)."""
    return {f"{d}@{v}": n for (d, v), n in LOADS.items()}
