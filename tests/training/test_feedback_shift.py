"""The feedback rule: the smallest margin shift that silences false alarms, never a
confirmed event, at most the cap; and the checks on labelled event records."""

from __future__ import annotations

import math

import pytest

from anomaly_api.service.streams.events import FEEDBACK_LABELS
from anomaly_api.training.feedback import (
    LABELS,
    feedback_shift,
    labelled_peaks,
    peak_score,
    read_jsonl,
    shift_for,
)
from anomaly_api.training.tuning import TuningError


def plain_shift(false_alarms: list[float], confirmed: list[float], cap: float) -> float:
    """The rule written out: the largest false-alarm peak below every confirmed peak."""
    candidates = [a for a in false_alarms if all(a < c for c in confirmed)]
    if not candidates:
        return 0.0
    return min(math.nextafter(max(candidates), math.inf), cap)


@pytest.mark.parametrize(
    ("false_alarms", "confirmed", "cap"),
    [
        ([0.2, 0.9, 0.4], [], 2.0),  # no confirmed event: silence them all
        ([0.2, 0.9, 0.4], [1.5, 3.0], 2.0),  # every confirmed peak above the false ones
        ([0.2, 0.9, 1.6, 2.5], [1.5, 3.0], 2.0),  # 1.6 and 2.5 stay
        ([0.2, 0.9, 1.4], [5.0], 1.0),  # the cap: 1.4 stays
        ([1.6], [1.5], 2.0),  # nothing below the lowest confirmed peak
        ([0.0, 0.3], [], 0.0),  # a zero cap moves nothing
    ],
)
def test_shift_matches_a_plain_computation(
    false_alarms: list[float], confirmed: list[float], cap: float
) -> None:
    delta = feedback_shift(false_alarms, confirmed, cap)
    assert delta == plain_shift(false_alarms, confirmed, cap)
    assert all(c - delta > 0 for c in confirmed)  # no confirmed event silenced
    below = [a for a in false_alarms if a < min(confirmed, default=math.inf)]
    assert all(a - delta <= 0 for a in below if a < cap)  # each silenced false alarm


def test_shift_for_counts_what_stays_and_why() -> None:
    records = [
        {"id": "f1", "peak_severity": 0.2 / 1.2, "label": "false_alarm"},
        {"id": "f2", "peak_severity": 1.4 / 2.4, "feedback": {"label": "false_alarm"}},
        {"id": "f3", "peak_severity": 3.5 / 4.5, "label": "false_alarm"},
        {"id": "c1", "peak_severity": 3.0 / 4.0, "label": "confirmed"},
        {"id": "e1", "peak_severity": 0.99, "label": "expected"},
        {"id": "u1", "peak_severity": 0.5},
    ]
    shift = shift_for(labelled_peaks(records), max_shift=1.0)
    assert shift.delta == 1.0
    details = dict(shift.details)
    assert details["silenced"] == 1
    assert [(s["id"], s["why"]) for s in details["stay"]] == [("f2", "cap"), ("f3", "confirmed")]
    assert (details["confirmed"], details["expected_ignored"], details["unlabelled"]) == (1, 1, 1)
    assert shift.reason.startswith("feedback: shift=1 silences 1 of 3 false alarms")


def test_peak_score_inverts_severity() -> None:
    for a in (0.0, 0.25, 1.0, 7.5):
        assert peak_score(a / (1 + a)) == pytest.approx(a)
    assert peak_score(1.0) == math.inf


def test_labels_are_the_services() -> None:
    assert LABELS == FEEDBACK_LABELS


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ([["not", "an", "object"]], "record 1: expected an event object"),
        ([{"peak_severity": 0.5, "label": "wrong"}], "record 1: label must be one of"),
        ([{"peak_severity": 0.5, "feedback": "x"}], "feedback must be an object"),
        ([{"peak_severity": "high", "label": "false_alarm"}], "peak_severity must be"),
        ([{"peak_severity": 1.5, "label": "false_alarm"}], "peak_severity must be"),
        ([{"label": "false_alarm"}], "peak_severity must be"),
        ([{"peak_severity": 0.5, "label": "confirmed"}], "no false_alarm event"),
        ([{"peak_severity": 0.5}], "1 unlabelled"),
        ([], "no false_alarm event"),
    ],
)
def test_bad_records_name_the_problem(records: list[object], fragment: str) -> None:
    with pytest.raises(TuningError) as caught:
        labelled_peaks(records)
    assert fragment in str(caught.value)


def test_read_jsonl_names_the_bad_line() -> None:
    assert read_jsonl('{"a": 1}\n\n[2]\n') == [{"a": 1}, [2]]
    with pytest.raises(TuningError, match="line 2: not JSON"):
        read_jsonl('{"a": 1}\n{oops\n')


def test_negative_or_infinite_cap_is_refused() -> None:
    for cap in (-1.0, math.inf):
        with pytest.raises(TuningError, match="max shift"):
            feedback_shift([0.5], [], cap)
