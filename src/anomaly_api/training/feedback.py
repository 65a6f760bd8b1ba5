"""Move thresholds from operator feedback: the smallest shift that silences false alarms.

Every model's ``anomaly_score`` is the k-th largest detector margin
``(offsets_[i] - s_i) / scales_[i]``, so moving each offset by ``-delta * scales_[i]``
(``MarginShift``) lowers every anomaly score by exactly ``delta``. An event's
``peak_severity`` ``s`` is ``a / (1 + a)`` of its largest anomaly score ``a``, so
``a = s / (1 - s)``.

The rule, over labelled event records (``label`` or ``feedback.label``): with ``F`` the
peaks of the ``false_alarm`` events and ``C`` those of the ``confirmed`` ones, ``delta`` is
just above the largest peak of ``F`` below ``min(C)`` (all of ``F`` when ``C`` is empty),
at most ``max_shift``: the smallest shift that silences as many false alarms as possible
without silencing a confirmed event. ``expected`` events (planned: maintenance, a test)
move nothing; unlabelled records are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from anomaly_api.training.tuning import MarginShift, TuningError

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "LABELS",
    "LabelledPeaks",
    "feedback_shift",
    "labelled_peaks",
    "peak_score",
    "read_jsonl",
    "shift_for",
]

LABELS: Final = ("false_alarm", "confirmed", "expected")
"""The labels an operator gives an event (the service's ``FEEDBACK_LABELS``; training
does not import the service)."""

DEFAULT_MAX_SHIFT: Final = 2.0
"""Largest shift, in margin units (robust spreads of each detector's score): a few false
alarms far above the rest should not blind the model to everything below them."""


def peak_score(severity: float) -> float:
    """The anomaly score ``a`` of a severity ``s = a / (1 + a)`` (infinite at ``s = 1``)."""
    return math.inf if severity >= 1.0 else severity / (1.0 - severity)


@dataclass(frozen=True)
class LabelledPeaks:
    """The peak anomaly scores of the labelled events, by label, with their ids."""

    false_alarms: tuple[tuple[str, float], ...]
    confirmed: tuple[tuple[str, float], ...]
    expected: int
    unlabelled: int


def _label(record: Mapping[str, Any], where: str) -> str | None:
    label = record.get("label")
    feedback = record.get("feedback")
    if label is None and feedback is not None:
        if not isinstance(feedback, Mapping):
            raise TuningError(f"{where}: feedback must be an object, got {feedback!r}")
        label = feedback.get("label")
    if label is not None and label not in LABELS:
        raise TuningError(f"{where}: label must be one of {list(LABELS)}, got {label!r}")
    return None if label is None else str(label)


def read_jsonl(text: str) -> list[object]:
    """The JSON value of each non-blank line; ``TuningError`` names a line that is not JSON."""
    records: list[object] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TuningError(f"line {n}: not JSON ({exc.msg})") from exc
    return records


def labelled_peaks(records: Iterable[object]) -> LabelledPeaks:
    """Check event records and sort their peaks by label; ``TuningError`` names the first
    malformed record (1-based) or says that no record has a usable label."""
    false_alarms: list[tuple[str, float]] = []
    confirmed: list[tuple[str, float]] = []
    expected = unlabelled = 0
    for n, record in enumerate(records, start=1):
        where = f"record {n}"
        if not isinstance(record, Mapping):
            raise TuningError(f"{where}: expected an event object, got {type(record).__name__}")
        label = _label(record, where)
        if label is None:
            unlabelled += 1
            continue
        if label == "expected":
            expected += 1
            continue
        severity = record.get("peak_severity")
        if (
            isinstance(severity, bool)
            or not isinstance(severity, (int, float))
            or not 0.0 <= severity <= 1.0
        ):
            raise TuningError(
                f"{where}: peak_severity must be a number in [0, 1], got {severity!r}"
            )
        event = str(record.get("id", where))
        target = false_alarms if label == "false_alarm" else confirmed
        target.append((event, peak_score(float(severity))))
    if not false_alarms:
        raise TuningError(
            "no false_alarm event among the records "
            f"({len(confirmed)} confirmed, {expected} expected, {unlabelled} unlabelled): "
            "nothing to silence"
        )
    return LabelledPeaks(tuple(false_alarms), tuple(confirmed), expected, unlabelled)


def feedback_shift(
    false_alarms: Iterable[float], confirmed: Iterable[float], max_shift: float
) -> float:
    """The rule of the module doc over peak anomaly scores: 0 when no false alarm can be
    silenced without a confirmed one."""
    if not math.isfinite(max_shift) or max_shift < 0:
        raise TuningError(f"max shift must be a finite number >= 0, got {max_shift}")
    lowest_confirmed = min(confirmed, default=math.inf)
    below = [a for a in false_alarms if a < lowest_confirmed]
    if not below:
        return 0.0
    delta = math.nextafter(max(below), math.inf)
    if delta >= lowest_confirmed:  # one ulp apart: the shift may not reach the confirmed peak
        delta = max(below)
    return max(min(delta, max_shift), 0.0)


def shift_for(peaks: LabelledPeaks, max_shift: float = DEFAULT_MAX_SHIFT) -> MarginShift:
    """The ``MarginShift`` objective for these peaks, with its counts and the false alarms
    that stay (peak at or above the lowest confirmed one, or beyond the cap)."""
    delta = feedback_shift(
        (a for _, a in peaks.false_alarms), (a for _, a in peaks.confirmed), max_shift
    )
    lowest = min((a for _, a in peaks.confirmed), default=math.inf)
    stay = [
        {"id": event, "peak_score": a, "why": "confirmed" if a >= lowest else "cap"}
        for event, a in peaks.false_alarms
        if a > delta
    ]
    silenced = len(peaks.false_alarms) - len(stay)
    details: dict[str, Any] = {
        "shift": delta,
        "max_shift": max_shift,
        "false_alarms": len(peaks.false_alarms),
        "silenced": silenced,
        "stay": stay,
        "confirmed": len(peaks.confirmed),
        "expected_ignored": peaks.expected,
        "unlabelled": peaks.unlabelled,
    }
    reason = (
        f"feedback: shift={delta:.6g} silences {silenced} of {len(peaks.false_alarms)} "
        f"false alarms, keeps {len(peaks.confirmed)} confirmed"
    )
    return MarginShift(delta, reason, details)
