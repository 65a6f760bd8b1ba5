"""A batch's predictions as columns, and their byte form for the cache.

``PredictionColumns`` holds every prediction of a call as NumPy arrays (no object per row,
whatever the route). A cached prediction is stored as fixed-size IEEE doubles, so decoding
it gives back exactly the floats that were computed: cached and fresh answers are
identical apart from the ``cached`` flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PredictionCodec", "PredictionColumns"]

_FORMAT_TAG = b"\x02"  # bump when the layout changes, so old entries read as misses


@dataclass(slots=True)
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

    @staticmethod
    def merged(
        n: int, parts: Sequence[tuple[NDArray[np.intp] | slice, PredictionColumns]]
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
    """Packs predictions of ``n_detectors`` detectors and ``n_features`` features into
    bytes and back."""

    def __init__(self, n_detectors: int, n_features: int) -> None:
        self.n_detectors = n_detectors
        self.n_features = n_features
        # Little-endian, no padding: the tag, the doubles (anomaly score, confidence,
        # severity, the detectors' scores, the features' shares), then the booleans (the
        # decision, the detectors' votes): the layout the tag names. A field per column, so
        # each column is written by one assignment.
        self._record = np.dtype(
            [
                ("tag", "u1"),
                ("anomaly_score", "<f8"),
                ("confidence", "<f8"),
                ("severity", "<f8"),
                ("scores", "<f8", (n_detectors,)),
                ("shares", "<f8", (n_features,)),
                ("is_anomaly", "?"),
                ("votes", "?", (n_detectors,)),
            ]
        )
        self.size = self._record.itemsize

    def encode(self, columns: PredictionColumns) -> list[bytes]:
        """Each row of ``columns`` (all but ``cached``) as its bytes, in order, from one array."""
        n = len(columns)
        records = np.empty(n, dtype=self._record)
        records["tag"] = _FORMAT_TAG[0]
        records["anomaly_score"] = columns.anomaly_score
        records["confidence"] = columns.confidence
        records["severity"] = columns.severity
        records["scores"] = columns.scores
        records["shares"] = columns.shares
        records["is_anomaly"] = columns.is_anomaly
        records["votes"] = columns.votes
        data, size = records.tobytes(), self.size
        return [data[i : i + size] for i in range(0, n * size, size)]

    def valid(self, data: bytes) -> bool:
        """Whether ``data`` is in this codec's layout (an entry ``decode`` can read)."""
        return len(data) == self.size and data[:1] == _FORMAT_TAG

    def decode(self, blobs: Sequence[bytes]) -> PredictionColumns:
        """The predictions of ``blobs`` as columns (``cached`` set); every blob ``valid``."""
        records = np.frombuffer(b"".join(blobs), dtype=self._record)
        return PredictionColumns(
            is_anomaly=records["is_anomaly"],
            anomaly_score=records["anomaly_score"],
            confidence=records["confidence"],
            severity=records["severity"],
            scores=records["scores"],
            votes=records["votes"],
            shares=records["shares"],
            cached=np.ones(len(records), dtype=bool),
        )
