"""Operator feedback on a stream's adaptive threshold: per-sensor allowances.

A ``false_alarm`` or ``expected`` label says "readings like this event's are normal here".
What an event looked like is which sensors carried it: its top sensors and their shares
(``EventSensor.share``: mean share over its anomalous readings). Raising the whole stream's
threshold by the event's peak also hides the weak true events of other sensors, so a label
gives an *allowance* to the event's sensors only, and a reading's raise is the share-weighted
sum of its sensors' allowances: ``sum_c share_c * allowance_c``. A reading carried by the
labelled sensors in the event's proportions is raised just above the event's peak. A
reading is carried by the sensor of its largest share (an event is described by its top
sensors the same way): when that sensor has no allowance, the reading is not like any
labelled event and is raised by nothing, so a fault on sensors nobody labelled alarms at the
level's threshold though a labelled sensor, within its bounds, carries a minority of it.

The label says "that much is normal", not "anything on these sensors is normal": with a
model that measures each sensor's deviation by kind of evidence (a time-aware model: |z| of
each window feature, its level, shift, relation to the others, ...), a widening keeps the
labelled event's largest deviation of each kind on each of its sensors (its *bounds*), and a
sensor's allowance applies to a reading only while each of that sensor's deviations stays
within its bound plus ``BOUND_MARGIN`` (one robust spread of the feature). A fault that
moves a labelled sensor in another way (a level shift where the false alarm was a relation
off by the same amount), or further than the label covered, is not raised by it. A
widening without bounds (a point-wise model, or stored without them) applies at any size.

The allowances of one label are the smallest (least squares) that raise a reading with the
event's shares ``p`` by its peak ``a``: ``allowance_c = a * p_c / sum(p**2)``, each at most
``max_step``, so no reading is ever raised by feedback more than ``max_step``. A sensor's
allowance in a reading is the largest of the labels whose bounds hold the reading (not their
sum: ten false alarms of one size need the same allowance as one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BOUND_MARGIN",
    "MAX_WIDENINGS",
    "Deviations",
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

BOUND_MARGIN = 1.0
"""How far (robust spreads of the feature, ``|z|`` units) a reading's deviation may go beyond
the labelled event's largest of that kind and sensor and still be covered by its allowance."""


@dataclass(frozen=True)
class Deviations:
    """Each reading's deviation per channel and kind of evidence: ``values`` of shape
    ``(n, n_channels, len(kinds))`` (or how to compute it), 0 where the model measured none."""

    kinds: tuple[str, ...]
    values: NDArray[np.float64] | Callable[[], NDArray[np.float64]]

    def array(self) -> NDArray[np.float64]:
        """The values, computed when needed."""
        values = self.values() if callable(self.values) else self.values
        return np.asarray(values, dtype=np.float64)


Bounds = tuple[tuple[str, tuple[tuple[str, float], ...]], ...]
"""``(sensor, ((kind, largest deviation), ...))`` of a labelled event's sensors."""


@dataclass(frozen=True)
class Widening:
    """One labelled event's allowances: ``(sensor, score units)``, largest first, and the
    bounds within which each applies (none: at any size)."""

    event_id: str
    allowances: tuple[tuple[str, float], ...]
    bounds: Bounds = ()

    @property
    def amount(self) -> float:
        """Its largest allowance: the most it raises any reading."""
        return max((a for _, a in self.allowances), default=0.0)

    def to_json(self) -> list[object]:
        """``[event id, {sensor: allowance}]`` (the bounds are kept beside it,
        ``bounds_json``: a stored state stays readable by code that knows none)."""
        return [self.event_id, dict(self.allowances)]

    def bounds_json(self) -> dict[str, dict[str, float]]:
        """``{sensor: {kind: largest deviation}}``."""
        return {sensor: dict(kinds) for sensor, kinds in self.bounds}

    @classmethod
    def from_json(cls, data: object, bounds: object = None) -> Widening:
        """Read ``to_json``'s output and ``bounds_json``'s (None: unbounded); ``ValueError``
        when malformed or not finite and >= 0."""
        if not isinstance(data, list | tuple) or len(data) != 2 or not isinstance(data[1], dict):
            raise ValueError(f"malformed widening: {data!r:.80}")
        pairs = tuple((str(s), float(a)) for s, a in data[1].items())
        kept = tuple(
            (str(sensor), tuple((str(k), float(z)) for k, z in _mapping(kinds).items()))
            for sensor, kinds in _mapping({} if bounds is None else bounds).items()
        )
        numbers = [a for _, a in pairs] + [z for _, kinds in kept for _, z in kinds]
        if not all(math.isfinite(a) and a >= 0.0 for a in numbers):
            raise ValueError("malformed widening: an allowance or bound is not a number >= 0")
        return cls(str(data[0]), pairs, kept)


def _mapping(data: object) -> Mapping[object, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"malformed widening bounds: {data!r:.80}")
    return data


def read_widenings(data: Iterable[object], bounds: object = None) -> tuple[Widening, ...]:
    """Stored widenings, with their bounds by event id (``{event id: bounds_json()}``; a
    widening without any is unbounded); an ``[event id, number]`` pair (one amount for the
    whole stream, no sensors to weigh it by) is dropped rather than failing the stream's
    stored state."""
    kept = _mapping({} if bounds is None else bounds)
    return tuple(
        Widening.from_json(w, kept.get(w[0]) if isinstance(w, list) and w else None)
        for w in data
        if not (isinstance(w, list) and len(w) == 2 and isinstance(w[1], int | float))
    )


def widening_for(
    event_id: str,
    peak_score: float,
    top: Sequence[tuple[str, float]],
    max_step: float,
    *,
    peaks: Mapping[str, Mapping[str, float]] | None = None,
) -> Widening:
    """The allowances of a ``false_alarm``/``expected`` event whose highest reading scored
    ``peak_score`` (as answered) and whose ``top`` sensors had these shares, bounded by the
    event's largest deviation of each kind on each of them (``peaks``; None: unbounded)."""
    shares = [(name, share) for name, share in top if share > 0.0]
    norm = sum(share * share for _, share in shares)
    ask = max(0.0, float(peak_score)) * 1.01 + 1e-6
    if norm <= 0.0:
        return Widening(event_id, ())
    bounds = tuple(
        (name, tuple((str(k), max(0.0, float(z))) for k, z in peaks[name].items()))
        for name, _ in shares
        if peaks is not None and name in peaks
    )
    return Widening(
        event_id,
        tuple((name, min(max_step, ask * share / norm)) for name, share in shares),
        bounds,
    )


def allowances(widenings: Iterable[Widening]) -> dict[str, float]:
    """Each sensor's allowance: the largest any widening gives it."""
    out: dict[str, float] = {}
    for widening in widenings:
        for name, amount in widening.allowances:
            out[name] = max(out.get(name, 0.0), amount)
    return out


def raises(
    widenings: Iterable[Widening],
    channels: Sequence[str],
    shares: Shares,
    n: int,
    deviations: Deviations | None = None,
) -> NDArray[np.float64] | None:
    """Each of ``n`` readings' raise by feedback (None: no allowance, nothing to add).

    A sensor's allowance in a reading is the largest of the widenings whose bounds on that
    sensor hold it (``deviations``; without them every bound holds). A reading whose largest
    share is on a sensor without any allowance is raised by nothing (of equal shares, the
    first in ``channels`` order counts)."""
    column = {name: c for c, name in enumerate(channels)}
    widenings = [w for w in widenings if any(a > 0.0 and s in column for s, a in w.allowances)]
    if not widenings:
        return None
    per = np.zeros((n, len(channels)))
    values = None if deviations is None else deviations.array()
    if values is not None and values.shape[:2] != (n, len(channels)):
        raise ValueError(f"deviations of shape {values.shape}, expected {(n, len(channels))}")
    kind = {} if deviations is None else {k: i for i, k in enumerate(deviations.kinds)}
    for widening in widenings:
        bounds = dict(widening.bounds)
        for name, amount in widening.allowances:
            if name not in column:
                continue
            c = column[name]
            held: NDArray[np.bool_] | bool = True
            if values is not None and name in bounds:
                held = np.ones(n, dtype=np.bool_)
                for k, bound in bounds[name]:
                    if k in kind:
                        held &= values[:, c, kind[k]] <= bound + BOUND_MARGIN
            per[:, c] = np.maximum(per[:, c], np.where(held, amount, 0.0))
    matrix = np.asarray(shares() if callable(shares) else shares, dtype=np.float64)
    if matrix.shape != (n, len(channels)):
        raise ValueError(f"shares of shape {matrix.shape}, expected {(n, len(channels))}")
    raised = np.sum(np.clip(matrix, 0.0, 1.0) * per, axis=1)
    labelled = np.zeros(len(channels), dtype=np.bool_)
    for widening in widenings:
        labelled[[column[s] for s, a in widening.allowances if a > 0.0 and s in column]] = True
    carried = labelled[np.argmax(matrix, axis=1)]
    largest = max(a for w in widenings for s, a in w.allowances if s in column)
    return np.asarray(np.where(carried, np.minimum(raised, largest), 0.0), dtype=np.float64)
