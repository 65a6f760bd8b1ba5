"""Operator feedback on a stream's adaptive threshold: per-sensor allowances.

A ``false_alarm`` or ``expected`` label says "readings like this event's are normal here".
What an event looked like is which sensors carried it: its top sensors and their shares
(``EventSensor.share``: mean share over its anomalous readings). Raising the whole stream's
threshold by the event's peak also hides the weak true events of other sensors, so a label
gives an *allowance* to the event's sensors only, and a reading's raise is the share-weighted
sum of its sensors' allowances: ``sum_c share_c * allowance_c``. A reading carried by the
labelled sensors in the event's proportions is raised just above the event's peak; one
carried by other sensors hardly at all.

The allowances of one label are the smallest (least squares) that raise a reading with the
event's shares ``p`` by its peak ``a``: ``allowance_c = a * p_c / sum(p**2)``, each at most
``max_step``, so no reading is ever raised by feedback more than ``max_step``. A stream's
allowance for a sensor is the largest its labels give it (not their sum: ten false alarms of
one size need the same allowance as one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_WIDENINGS",
    "Shares",
    "Widening",
    "allowances",
    "raises",
    "read_widenings",
    "widening_for",
]

MAX_WIDENINGS = 8
"""Feedback widenings a stream keeps (the oldest are dropped first)."""

Shares = NDArray[np.float64] | Callable[[], NDArray[np.float64]]
"""Each reading's share per channel ``(n, n_channels)``, or how to compute it (only called
when the stream has a widening)."""


@dataclass(frozen=True)
class Widening:
    """One labelled event's allowances: ``(sensor, score units)``, largest first."""

    event_id: str
    allowances: tuple[tuple[str, float], ...]

    @property
    def amount(self) -> float:
        """Its largest allowance: the most it raises any reading."""
        return max((a for _, a in self.allowances), default=0.0)

    def to_json(self) -> list[object]:
        """``[event id, {sensor: allowance}]``."""
        return [self.event_id, dict(self.allowances)]

    @classmethod
    def from_json(cls, data: object) -> Widening:
        """Read ``to_json``'s output; ``ValueError`` when malformed or not finite and >= 0."""
        if not isinstance(data, list | tuple) or len(data) != 2 or not isinstance(data[1], dict):
            raise ValueError(f"malformed widening: {data!r:.80}")
        pairs = tuple((str(s), float(a)) for s, a in data[1].items())
        if not all(math.isfinite(a) and a >= 0.0 for _, a in pairs):
            raise ValueError("malformed widening: an allowance is not a finite number >= 0")
        return cls(str(data[0]), pairs)


def read_widenings(data: Iterable[object]) -> tuple[Widening, ...]:
    """Stored widenings; an ``[event id, number]`` pair (one amount for the whole stream, no
    sensors to weigh it by) is dropped rather than failing the stream's stored state."""
    return tuple(
        Widening.from_json(w)
        for w in data
        if not (isinstance(w, list) and len(w) == 2 and isinstance(w[1], int | float))
    )


def widening_for(
    event_id: str, peak_score: float, top: Sequence[tuple[str, float]], max_step: float
) -> Widening:
    """The allowances of a ``false_alarm``/``expected`` event whose highest reading scored
    ``peak_score`` (as answered) and whose ``top`` sensors had these shares."""
    shares = [(name, share) for name, share in top if share > 0.0]
    norm = sum(share * share for _, share in shares)
    ask = max(0.0, float(peak_score)) * 1.01 + 1e-6
    if norm <= 0.0:
        return Widening(event_id, ())
    return Widening(
        event_id, tuple((name, min(max_step, ask * share / norm)) for name, share in shares)
    )


def allowances(widenings: Iterable[Widening]) -> dict[str, float]:
    """Each sensor's allowance: the largest any widening gives it."""
    out: dict[str, float] = {}
    for widening in widenings:
        for name, amount in widening.allowances:
            out[name] = max(out.get(name, 0.0), amount)
    return out


def raises(
    widenings: Iterable[Widening], channels: Sequence[str], shares: Shares, n: int
) -> NDArray[np.float64] | None:
    """Each of ``n`` readings' raise by feedback (None: no allowance, nothing to add)."""
    per_sensor = allowances(widenings)
    column = {name: c for c, name in enumerate(channels)}
    vector = np.zeros(len(channels))
    for name, amount in per_sensor.items():
        if name in column:
            vector[column[name]] = amount
    if not vector.any():
        return None
    matrix = np.asarray(shares() if callable(shares) else shares, dtype=np.float64)
    if matrix.shape != (n, len(channels)):
        raise ValueError(f"shares of shape {matrix.shape}, expected {(n, len(channels))}")
    raised = np.clip(matrix, 0.0, 1.0) @ vector
    return np.asarray(np.minimum(raised, vector.max()), dtype=np.float64)
