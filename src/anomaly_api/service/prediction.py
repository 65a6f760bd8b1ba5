"""One row's prediction, and its compact byte form for the prediction cache.

A cached prediction is stored as fixed-size IEEE doubles, so decoding it gives back
exactly the floats that were computed: cached and fresh answers are identical apart
from the ``cached`` flag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Prediction", "PredictionCodec"]

_FORMAT_TAG = b"\x02"  # bump when the layout changes, so old entries read as misses


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
    severity: float
    """How anomalous, in [0, 1): 0 when normal, monotone in ``anomaly_score``."""
    shares: tuple[float, ...]
    """Each feature's share of the anomaly, in feature order (non-negative, sum 1)."""
    cached: bool = False


class PredictionCodec:
    """Packs a ``Prediction`` of ``n_detectors`` detectors and ``n_features`` features into
    bytes and back."""

    def __init__(self, n_detectors: int, n_features: int) -> None:
        self.n_detectors = n_detectors
        self.n_features = n_features
        self._struct = struct.Struct(f"<{n_detectors + n_features + 3}d{n_detectors + 1}?")
        self.size = len(_FORMAT_TAG) + self._struct.size

    def encode(self, prediction: Prediction) -> bytes:
        """Bytes holding every field except ``cached``."""
        return _FORMAT_TAG + self._struct.pack(
            prediction.anomaly_score,
            prediction.confidence,
            prediction.severity,
            *prediction.scores,
            *prediction.shares,
            prediction.is_anomaly,
            *prediction.votes,
        )

    def decode(self, data: bytes) -> Prediction | None:
        """The cached prediction, or None when ``data`` is not in this codec's layout."""
        if len(data) != self.size or data[:1] != _FORMAT_TAG:
            return None
        values = self._struct.unpack_from(data, 1)
        n = self.n_detectors
        end = n + self.n_features + 3  # after the doubles
        return Prediction(
            is_anomaly=values[end],
            anomaly_score=values[0],
            confidence=values[1],
            scores=tuple(values[3 : n + 3]),
            votes=tuple(values[end + 1 :]),
            severity=values[2],
            shares=tuple(values[n + 3 : end]),
            cached=True,
        )
