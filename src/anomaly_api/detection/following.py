"""A level and a spread per channel that follow a stream: the ``follow`` feature.

For each channel, the newest raw reading ``x`` against an exponentially weighted (EW)
level ``m`` and spread ``s`` of the readings before it::

    g = (x - m) / s,    s = FOLLOW_SPREAD * max(d, floor)

``m`` is an EW mean of the readings and ``d`` an EW mean of their absolute deviations
from it (``FOLLOW_SPREAD`` turns a mean absolute deviation into the standard deviation
of a normal distribution); both start from the training readings' median and mean
absolute deviation from it (``follow_start``). After ``g``, each reading moves them, in
this order and with these operations only (the Redis store's append script does the
same, so both keep the same bits)::

    diff = x - m
    m = m + alpha * diff
    d = d + alpha * (abs(diff) - d)

with ``alpha = 2 / (memory + 1)`` (``follow_alpha``: an EW mean with the centre of mass
of a plain mean of the last ``memory`` readings). The state learns from every reading,
flagged or not: a new level or spread becomes normal after a few ``memory`` readings.

A state is ``Followed``: the level and the deviation ``d`` per channel, in raw units.
This module imports numpy only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from math import isfinite
from typing import Final

import numpy as np
from numpy.typing import NDArray

FOLLOW_KIND: Final = "follow"
"""The feature kind of ``g`` (the last kind of a model that follows)."""
FOLLOW_SPREAD: Final = 1.2533
"""``sqrt(pi / 2)``: the standard deviation of a normal over its mean absolute deviation."""
FOLLOW_FLOOR: Final = 0.125
"""The smallest ``d``, in the channel's robust standard deviations of training: a channel
constant for a while must not turn its next move into an infinite ``g``."""


@dataclass(frozen=True)
class Followed:
    """A stream's followed level and mean absolute deviation per channel (raw units)."""

    level: tuple[float, ...]
    deviation: tuple[float, ...]

    def check(self, n_channels: int) -> None:
        """``ValueError`` unless both hold ``n_channels`` finite numbers."""
        if len(self.level) != n_channels or len(self.deviation) != n_channels:
            raise ValueError(
                f"a followed state holds {n_channels} levels and deviations, got "
                f"{len(self.level)} and {len(self.deviation)}"
            )
        if not all(map(isfinite, self.level)) or not all(map(isfinite, self.deviation)):
            raise ValueError("a followed state's levels and deviations must be finite")


def check_follow_memory(memory: object) -> int:
    """The memory as an int: 0 (off) or at least 1 reading; ``ValueError`` otherwise."""
    if isinstance(memory, bool) or not isinstance(memory, int | np.integer):
        raise ValueError(f"follow memory must be a whole number of readings, got {memory!r}")
    if memory < 0:
        raise ValueError(f"follow memory must be 0 (off) or a positive count, got {memory}")
    return int(memory)


def follow_alpha(memory: int) -> float:
    """The EW weight of a new reading for a memory of ``memory`` readings."""
    return 2.0 / (memory + 1.0)


def follow_start(values: NDArray[np.float64]) -> Followed:
    """The training state: per channel, the median of ``values`` and their mean absolute
    deviation from it."""
    level = np.median(values, axis=0)
    deviation = np.mean(np.abs(values - level), axis=0)
    return Followed(tuple(level.tolist()), tuple(deviation.tolist()))


def follow_rows(
    values: NDArray[np.float64],
    state: Followed,
    alpha: float,
    floor: NDArray[np.float64],
) -> tuple[NDArray[np.float64], Followed]:
    """``g`` of every row of ``values`` (raw readings of one stream, oldest first, shape
    (n, n_channels)) from ``state``, and the state after the last row: ``follow_newest``
    row after row."""
    low = floor.tolist()
    g = []
    for reading in values.tolist():
        row, state = follow_newest(reading, state, alpha, low)
        g.append(row)
    return np.array(g, dtype=np.float64).reshape(values.shape), state


def follow_newest(
    reading: list[float], state: Followed, alpha: float, floor: list[float]
) -> tuple[list[float], Followed]:
    """``g`` of one reading per channel and the state after it, with plain floats (the
    same IEEE operations as NumPy's on arrays, without an array per reading)."""
    g, levels, deviations = [], [], []
    for x, m, d, low in zip(reading, state.level, state.deviation, floor, strict=True):
        diff = x - m
        g.append(diff / (FOLLOW_SPREAD * (d if d > low else low)))
        levels.append(m + alpha * diff)
        deviations.append(d + alpha * (abs(diff) - d))
    return g, Followed(tuple(levels), tuple(deviations))


def advance(state: Followed, rows: list[list[float]], alpha: float) -> Followed:
    """The state after ``rows`` (raw readings, oldest first): ``follow_rows``' update alone,
    the same operations in the same order (a stream store's, per accepted reading)."""
    levels, deviations = list(state.level), list(state.deviation)
    channels = range(len(levels))
    for row in rows:
        for c in channels:
            m = levels[c]
            diff = row[c] - m
            levels[c] = m + alpha * diff
            deviations[c] = deviations[c] + alpha * (abs(diff) - deviations[c])
    return Followed(tuple(levels), tuple(deviations))


def pack_followed(state: Followed) -> bytes:
    """``state`` as little-endian float64 pairs (level, deviation) per channel."""
    pairs = [v for pair in zip(state.level, state.deviation, strict=True) for v in pair]
    return struct.pack(f"<{len(pairs)}d", *pairs)


def unpack_followed(raw: bytes) -> Followed:
    """``pack_followed``'s state back; ``ValueError`` for a length that is not pairs."""
    if len(raw) % 16:
        raise ValueError(f"a packed followed state holds pairs of float64, got {len(raw)} bytes")
    values = struct.unpack(f"<{len(raw) // 8}d", raw)
    return Followed(tuple(values[0::2]), tuple(values[1::2]))
