"""One row's prediction, and its compact byte form for the prediction cache.

A cached prediction is stored as fixed-size IEEE doubles, so decoding it gives back
exactly the floats that were computed: cached and fresh answers are identical apart
from the ``cached`` flag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Prediction", "PredictionCodec"]

_FORMAT_TAG = b"\x01"  # bump when the layout changes, so old entries read as misses


@dataclass(frozen=True, slots=True)
class Prediction:
    """The ensemble's answer for one feature vector."""

    is_anomaly: bool
    anomaly_score: float
    """Higher = more anomalous; positive exactly when ``is_anomaly``."""
    confidence: float
    """Confidence in the decision, in [0.5, 1]."""
    scores: tuple[float, ...]
    """Each detector's ``score_samples`` (lower = more abnormal), in detector order."""
    votes: tuple[bool, ...]
    """True where a detector votes anomaly, in detector order."""
    cached: bool = False


class PredictionCodec:
    """Packs a ``Prediction`` of ``n_detectors`` detectors into bytes and back."""

    def __init__(self, n_detectors: int) -> None:
        self.n_detectors = n_detectors
        self._struct = struct.Struct(f"<{n_detectors + 2}d{n_detectors + 1}?")
        self.size = len(_FORMAT_TAG) + self._struct.size

    def encode(self, prediction: Prediction) -> bytes:
        """Bytes holding every field except ``cached``."""
        return _FORMAT_TAG + self._struct.pack(
            prediction.anomaly_score,
            prediction.confidence,
            *prediction.scores,
            prediction.is_anomaly,
            *prediction.votes,
        )

    def decode(self, data: bytes) -> Prediction | None:
        """The cached prediction, or None when ``data`` is not in this codec's layout."""
        if len(data) != self.size or data[:1] != _FORMAT_TAG:
            return None
        values = self._struct.unpack_from(data, 1)
        n = self.n_detectors
        return Prediction(
            is_anomaly=values[n + 2],
            anomaly_score=values[0],
            confidence=values[1],
            scores=tuple(values[2 : n + 2]),
            votes=tuple(values[n + 3 :]),
            cached=True,
        )
