"""Where anomalies go and what they do to a standardized signal.

Four kinds, sized in standard deviations of the normal data so that none is trivial:

* ``spike``: one row; 1-3 channels jump by 3-6 sd.
* ``level_shift``: 8-30 rows; 1-2 channels are offset by 2-4 sd.
* ``correlation_break``: 5-20 rows; a pair of normally correlated channels takes
  values of 1.2-2.2 sd each (plausible alone) but with the opposite sign of their
  correlation.
* ``stuck_sensor``: 15-50 rows; one channel is frozen at its last normal value. Each
  row is plausible on its own, so point-wise detectors can only catch it when the
  other channels move away; this kind is expected to be hard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

NORMAL_KIND: Final = "normal"
ANOMALY_KINDS: Final[tuple[str, ...]] = (
    "spike",
    "level_shift",
    "correlation_break",
    "stuck_sensor",
)
_LENGTHS: Final[dict[str, tuple[int, int]]] = {
    "spike": (1, 1),
    "level_shift": (8, 30),
    "correlation_break": (5, 20),
    "stuck_sensor": (15, 50),
}
_MIN_PAIR_CORRELATION: Final = 0.4


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` hold one anomaly of ``kind``."""

    kind: str
    start: int
    stop: int


def _segment_lengths(rng: np.random.Generator, kind: str, budget: int) -> list[int]:
    low, high = _LENGTHS[kind]
    lengths: list[int] = []
    while budget > 0:
        length = min(int(rng.integers(low, high + 1)), budget)
        lengths.append(length)
        budget -= length
    return lengths


def plan_segments(rng: np.random.Generator, n_rows: int, n_anomalies: int) -> list[Segment]:
    """Place ``n_anomalies`` anomalous rows, split evenly over the kinds, without overlap.

    Segments are separated by at least one normal row, so a stuck sensor always has a
    last normal value to freeze.
    """
    base, extra = divmod(n_anomalies, len(ANOMALY_KINDS))
    pieces = [
        (kind, length)
        for i, kind in enumerate(ANOMALY_KINDS)
        for length in _segment_lengths(rng, kind, base + (1 if i < extra else 0))
    ]
    order = rng.permutation(len(pieces))
    free = n_rows - n_anomalies - len(pieces)
    if free < 0:
        raise ValueError(f"{n_anomalies} anomalies do not fit in {n_rows} rows")
    gaps = rng.multinomial(free, np.full(len(pieces) + 1, 1.0 / (len(pieces) + 1)))
    segments: list[Segment] = []
    position = 0
    for gap, index in zip(gaps[:-1], order, strict=True):
        kind, length = pieces[index]
        position += int(gap) + 1
        segments.append(Segment(kind, position, position + length))
        position += length
    return segments


def row_kinds(segments: list[Segment], n_rows: int) -> NDArray[np.str_]:
    """The kind of every row (``NORMAL_KIND`` outside the segments)."""
    width = max(len(k) for k in (NORMAL_KIND, *ANOMALY_KINDS))
    kinds = np.full(n_rows, NORMAL_KIND, dtype=f"<U{width}")
    for segment in segments:
        kinds[segment.start : segment.stop] = segment.kind
    return kinds


def correlated_pairs(values: NDArray[np.float64]) -> list[tuple[int, int, float]]:
    """Channel pairs whose absolute correlation is at least 0.4, with the correlation."""
    corr: NDArray[np.float64] = np.atleast_2d(np.corrcoef(values, rowvar=False))
    n = corr.shape[0]
    return [
        (i, j, float(corr[i, j]))
        for i in range(n)
        for j in range(i + 1, n)
        if abs(corr[i, j]) >= _MIN_PAIR_CORRELATION
    ]


def inject_anomalies(
    rng: np.random.Generator, values: NDArray[np.float64], segments: list[Segment]
) -> NDArray[np.float64]:
    """Return a copy of standardized ``values`` with every segment's anomaly applied."""
    out = values.copy()
    n_channels = values.shape[1]
    pairs = correlated_pairs(values)
    for seg in segments:
        rows = slice(seg.start, seg.stop)
        length = seg.stop - seg.start
        sign = rng.choice([-1.0, 1.0])
        if seg.kind == "spike":
            channels = rng.choice(n_channels, size=int(rng.integers(1, 4)), replace=False)
            signs = rng.choice([-1.0, 1.0], size=len(channels))
            out[rows, channels] += signs * rng.uniform(3.0, 6.0, size=len(channels))
        elif seg.kind == "level_shift":
            channels = rng.choice(n_channels, size=int(rng.integers(1, 3)), replace=False)
            out[rows, channels] += sign * rng.uniform(2.0, 4.0, size=len(channels))
        elif seg.kind == "correlation_break":
            i, j, rho = pairs[int(rng.integers(len(pairs)))]
            out[rows, i] = sign * rng.uniform(1.2, 2.2, size=length)
            out[rows, j] = -np.sign(rho) * sign * rng.uniform(1.2, 2.2, size=length)
        elif seg.kind == "stuck_sensor":
            channel = int(rng.integers(n_channels))
            out[rows, channel] = values[max(seg.start - 1, 0), channel]
        else:  # pragma: no cover - plan_segments only produces known kinds
            raise ValueError(f"unknown anomaly kind {seg.kind!r}")
    return out
