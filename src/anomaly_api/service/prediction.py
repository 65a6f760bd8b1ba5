"""One row's prediction, a batch's predictions as columns, and their byte form for the cache.

A cached prediction is stored as fixed-size IEEE doubles, so decoding it gives back
exactly the floats that were computed: cached and fresh answers are identical apart
from the ``cached`` flag. ``PredictionColumns`` holds a whole batch as NumPy arrays (the
batch route's path: no object per row); its rows are ``Prediction``s, and the codec
packs and unpacks either form to the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Prediction", "PredictionCodec", "PredictionColumns"]

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


@dataclass(frozen=True, slots=True)
class PredictionColumns:
    """The predictions of a batch, one array per field (row ``i`` of each is row ``i``)."""

    is_anomaly: NDArray[np.bool_]
    anomaly_score: NDArray[np.float64]
    confidence: NDArray[np.float64]
    severity: NDArray[np.float64]
    scores: NDArray[np.float64]
    """Shape ``(rows, detectors)``."""
    votes: NDArray[np.bool_]
    """Shape ``(rows, detectors)``."""
    shares: NDArray[np.float64]
    """Shape ``(rows, features)``."""
    cached: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.anomaly_score)

    def to_predictions(self) -> list[Prediction]:
        """One ``Prediction`` per row, with exactly these values."""
        return [
            Prediction(
                is_anomaly=flag,
                anomaly_score=value,
                confidence=confidence,
                scores=tuple(row_scores),
                votes=tuple(row_votes),
                severity=severity,
                shares=tuple(row_shares),
                cached=cached,
            )
            for flag, value, confidence, row_scores, row_votes, severity, row_shares, cached in zip(
                self.is_anomaly.tolist(),
                self.anomaly_score.tolist(),
                self.confidence.tolist(),
                self.scores.tolist(),
                self.votes.tolist(),
                self.severity.tolist(),
                self.shares.tolist(),
                self.cached.tolist(),
                strict=True,
            )
        ]

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self.to_predictions())

    @staticmethod
    def merged(
        n: int, parts: Sequence[tuple[NDArray[np.intp], PredictionColumns]]
    ) -> PredictionColumns:
        """``n`` rows, where each ``(rows, columns)`` part gives the values of those rows."""
        first = parts[0][1]
        fields = {}
        for name in PredictionColumns.__slots__:
            template = getattr(first, name)
            out = np.empty((n, *template.shape[1:]), dtype=template.dtype)
            for rows, part in parts:
                out[rows] = getattr(part, name)
            fields[name] = out
        return PredictionColumns(**fields)


class PredictionCodec:
    """Packs a ``Prediction`` of ``n_detectors`` detectors and ``n_features`` features into
    bytes and back."""

    def __init__(self, n_detectors: int, n_features: int) -> None:
        self.n_detectors = n_detectors
        self.n_features = n_features
        self._struct = struct.Struct(f"<{n_detectors + n_features + 3}d{n_detectors + 1}?")
        self.size = len(_FORMAT_TAG) + self._struct.size
        # The same bytes as ``_struct`` (little-endian, no padding), one record per row.
        self._record = np.dtype(
            [
                ("tag", "u1"),
                ("head", "<f8", (3,)),
                ("scores", "<f8", (n_detectors,)),
                ("shares", "<f8", (n_features,)),
                ("is_anomaly", "?"),
                ("votes", "?", (n_detectors,)),
            ]
        )
        assert self._record.itemsize == self.size

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

    def encode_many(self, columns: PredictionColumns) -> list[bytes]:
        """``encode`` of every row of ``columns``, in order, from one array."""
        n = len(columns)
        records = np.empty(n, dtype=self._record)
        records["tag"] = _FORMAT_TAG[0]
        head = records["head"]
        head[:, 0] = columns.anomaly_score
        head[:, 1] = columns.confidence
        head[:, 2] = columns.severity
        records["scores"] = columns.scores
        records["shares"] = columns.shares
        records["is_anomaly"] = columns.is_anomaly
        records["votes"] = columns.votes
        data, size = records.tobytes(), self.size
        return [data[i : i + size] for i in range(0, n * size, size)]

    def valid(self, data: bytes) -> bool:
        """Whether ``data`` is in this codec's layout (``decode`` would not give None)."""
        return len(data) == self.size and data[:1] == _FORMAT_TAG

    def decode_many(self, blobs: Sequence[bytes]) -> PredictionColumns:
        """``decode`` of every blob as columns (``cached`` set); every blob ``valid``."""
        records = np.frombuffer(b"".join(blobs), dtype=self._record)
        head = records["head"]
        return PredictionColumns(
            is_anomaly=records["is_anomaly"].copy(),
            anomaly_score=head[:, 0].copy(),
            confidence=head[:, 1].copy(),
            severity=head[:, 2].copy(),
            scores=np.ascontiguousarray(records["scores"]),
            votes=np.ascontiguousarray(records["votes"]),
            shares=np.ascontiguousarray(records["shares"]),
            cached=np.ones(len(records), dtype=bool),
        )
