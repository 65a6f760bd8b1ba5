"""Per-stream adaptation: a threshold that slowly follows the stream's normal operation.

On normal readings a model's ``anomaly_score`` sits around a typical level: its median
on the held-out normal readings its thresholds were calibrated on
(``AdaptationModel.reference``). Normal operation that drifts (wear, seasons, a new
set-point, another run of the plant) shows first as that level creeping up, then as false
alarms. A stream's ``AdaptiveState`` follows the level with a slow running median of the
scores of its normal-looking readings (a stochastic-approximation median: each reading
moves the level a fixed small step towards itself, so one odd reading moves it no more
than a usual one, and the level settles where half the scores lie above) and raises the
stream's threshold by how far the level has moved above the reference, at most ``cap``.
The threshold is never lowered: adaptation silences drift, it never invents alarms.

A fault must never be learned as normal: the state learns nothing from an anomalous
reading, nothing from the ``quiet`` readings after two anomalies less than ``quiet``
readings apart (an alarm needs ``k`` anomalies close together, so the readings of a raised
alarm and of an open event are frozen, and a fault's normal-looking readings with them),
and nothing from a reading scored without its full window (a time-aware model's warm-up:
another detector). A lone anomaly (the model's own false-alarm rate) holds nothing: the
state keeps learning through the rare flags of normal operation.

Operator feedback widens the threshold further, for readings like the labelled event's
only: a ``false_alarm`` or ``expected`` event gives its top sensors an allowance, and each
reading's threshold rises by its sensors' allowances weighted by their shares in it, each
allowance only while the sensor deviates no more, in no other way, than in the labelled
event, and nothing when the reading's largest share is on a sensor without an allowance
(``monitoring/widening.py``); a later ``confirmed`` on the same event takes it back
(``narrow``).

Everything here is pure: the state is a few numbers, JSON round-trips, and ``adapt`` is a
sequential recurrence over readings (Python floats: about a microsecond a reading), so
the same readings give the same state however they are batched -- a backtest of a file
equals appending its readings one by one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.contributions import severity_from_score
from anomaly_api.detection.voting import confidence_from_score
from anomaly_api.monitoring.widening import (
    MAX_WIDENINGS,
    Deviations,
    Shares,
    Widening,
    raises,
    read_widenings,
    widening_for,
)

__all__ = [
    "MAX_WIDENINGS",
    "AdaptationModel",
    "AdaptiveState",
    "adapt",
    "answered",
    "narrow",
    "widen",
]


@dataclass(frozen=True)
class AdaptationModel:
    """How a stream's threshold follows its normal operation, in ``anomaly_score`` units.

    Attributes
    ----------
    reference : float
        Median score of the model's held-out normal readings.
    spread : float
        Their robust spread (1.4826 x the median absolute deviation, floored).
    memory : float
        Readings over which the level can move by two spreads (each learned reading moves
        it by ``2 * spread / memory``).
    cap : float
        Largest raise of the threshold by the level (score units).
    quiet : int
        Two anomalies closer than this freeze the next ``quiet`` readings.
    max_step : float
        Largest feedback allowance of a sensor, so the largest raise by feedback of any
        reading (score units).
    """

    reference: float
    spread: float
    memory: float = 200.0
    cap: float = 2.0
    quiet: int = 30
    max_step: float = 2.0

    @classmethod
    def from_scores(cls, normal_scores: NDArray[np.float64], **options: Any) -> AdaptationModel:
        """The model of normal ``anomaly_score`` values (held-out normal readings)."""
        scores = np.asarray(normal_scores, dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size == 0:
            raise ValueError("no normal scores to adapt from")
        reference = float(np.median(scores))
        spread = 1.4826 * float(np.median(np.abs(scores - reference)))
        return cls(reference=reference, spread=max(spread, 1e-3), **options)

    def to_dict(self) -> dict[str, float]:
        """JSON form (what ``GET /streams/{id}`` reports)."""
        return {
            "reference": self.reference,
            "spread": self.spread,
            "memory": self.memory,
            "cap": self.cap,
            "quiet": self.quiet,
        }


@dataclass(frozen=True)
class AdaptiveState:
    """One stream's adaptive state; ``AdaptiveState()`` is a fresh stream."""

    level: float | None = None
    """Running median of the normal readings' scores (None: none learned yet, the
    reference)."""
    learned: int = 0
    """Readings learned from."""
    frozen: int = 0
    """Readings not learned from (anomalous, just after one, or warming up)."""
    calm: int | None = None
    """Readings since the last anomaly, counted up to ``quiet`` (None: none yet)."""
    hold: int = 0
    """Readings still frozen after anomalies close together."""
    widenings: tuple[Widening, ...] = ()
    """Feedback widenings (per-sensor allowances), oldest first."""

    def raised_by(self, model: AdaptationModel) -> float:
        """How far the level raises the threshold (0 when it is at or below the reference)."""
        if self.level is None:
            return 0.0
        return min(model.cap, max(0.0, self.level - model.reference))

    def widening(self, model: AdaptationModel) -> float:
        """How far feedback raises the threshold at most (for a reading carried only by the
        sensor with the largest allowance)."""
        return min(model.max_step, max((w.amount for w in self.widenings), default=0.0))

    def shift(self, model: AdaptationModel) -> float:
        """The threshold's largest raise for the stream's next reading (score units, >= 0)."""
        return self.raised_by(model) + self.widening(model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the widenings' bounds, when any, by event id)."""
        data: dict[str, Any] = {
            "level": self.level,
            "learned": self.learned,
            "frozen": self.frozen,
            "calm": self.calm,
            "hold": self.hold,
            "widenings": [w.to_json() for w in self.widenings],
        }
        bounds = {w.event_id: w.bounds_json() for w in self.widenings if w.bounds}
        if bounds:
            data["bounds"] = bounds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptiveState:
        """Read ``to_dict``'s output; ``ValueError`` when malformed."""
        try:
            level = data["level"]
            state = cls(
                level=None if level is None else float(level),
                learned=int(data["learned"]),
                frozen=int(data["frozen"]),
                calm=None if data["calm"] is None else int(data["calm"]),
                hold=int(data["hold"]),
                widenings=read_widenings(data["widenings"], data.get("bounds")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed adaptive state: {exc!r}") from exc
        if (state.level is not None and not math.isfinite(state.level)) or min(
            state.learned, state.frozen, state.hold, state.calm or 0
        ) < 0:
            raise ValueError("malformed adaptive state: non-finite number or negative count")
        return state


def adapt(
    model: AdaptationModel,
    state: AdaptiveState,
    scores: NDArray[np.float64],
    flags: NDArray[np.bool_],
    warming_up: NDArray[np.bool_],
    *,
    shares: Shares | None = None,
    channels: tuple[str, ...] = (),
    deviations: Deviations | None = None,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], AdaptiveState]:
    """The adapted anomaly flags of a stream's readings (oldest first), each reading's
    threshold raise, and the state after them.

    A reading is anomalous when the model flagged it and its score exceeds its raise (a
    warming-up reading keeps the model's flag and has no raise). Then the state learns the
    reading unless it is frozen (see the module doc). ``shares`` (per ``channels``) give
    each reading's raise by feedback; without them feedback raises nothing. ``deviations``
    (per ``channels``) say which readings each allowance covers (without them, all).
    """
    n = len(scores)
    out = np.asarray(flags, dtype=np.bool_).copy()
    shifts = np.zeros(n)
    level, learned, frozen = state.level, state.learned, state.frozen
    calm, hold = state.calm, state.hold
    by_feedback = None
    if state.widenings and shares is not None:
        by_feedback = raises(state.widenings, channels, shares, n, deviations)
    widened = [0.0] * n if by_feedback is None else by_feedback.tolist()
    step = 2.0 * model.spread / model.memory
    reference, cap, quiet = model.reference, model.cap, model.quiet
    for i, (score, flag, warm, widening) in enumerate(
        zip(scores.tolist(), out.tolist(), np.asarray(warming_up).tolist(), widened, strict=True)
    ):
        shift = 0.0
        if not warm:
            shift = (0.0 if level is None else min(cap, max(0.0, level - reference))) + widening
            shifts[i] = shift
        anomalous = flag and score > shift
        out[i] = anomalous
        if anomalous:
            if calm is not None and calm < quiet:
                hold = quiet  # anomalies close together: an alarm, a fault
            calm = 0
            frozen += 1
            continue
        if calm is not None:
            calm = min(calm + 1, quiet)
        if hold or warm:
            hold = max(hold - 1, 0)
            frozen += 1
            continue
        if level is None:
            level = reference
        level += step if score > level else -step if score < level else 0.0
        learned += 1
    new = AdaptiveState(
        level=level,
        learned=learned,
        frozen=frozen,
        calm=calm,
        hold=hold,
        widenings=state.widenings,
    )
    return out, shifts, new


def answered(
    scores: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``severity`` and ``confidence`` of adapted scores (the model's minus each reading's
    raise), as the model derives them from its own scores."""
    return severity_from_score(scores), confidence_from_score(scores)


def widen(
    model: AdaptationModel,
    state: AdaptiveState,
    event_id: str,
    peak_score: float,
    top: Sequence[tuple[str, float]],
    *,
    peaks: Mapping[str, Mapping[str, float]] | None = None,
) -> AdaptiveState:
    """``state`` widened by a ``false_alarm``/``expected`` event whose highest reading
    scored ``peak_score`` (as answered, after the raise then in force) and whose ``top``
    sensors had these shares: allowances for those sensors (``monitoring/widening.py``),
    each at most ``max_step`` and bounded by the event's largest deviations on them
    (``peaks``: ``{sensor: {kind: |z|}}``). A repeated event replaces its own part."""
    widening = widening_for(event_id, peak_score, top, model.max_step, peaks=peaks)
    kept = tuple(w for w in state.widenings if w.event_id != event_id)
    return replace(state, widenings=(*kept, widening)[-MAX_WIDENINGS:])


def narrow(state: AdaptiveState, event_id: str) -> AdaptiveState:
    """``state`` without the widening of ``event_id`` (itself when it had none)."""
    kept = tuple(w for w in state.widenings if w.event_id != event_id)
    return state if len(kept) == len(state.widenings) else replace(state, widenings=kept)
