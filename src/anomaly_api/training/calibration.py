"""Thresholds that keep a false-alarm rate on *later* normal data, and the statement of it.

A detector (one member, or a k-of-n vote) flags a reading when its decision score
``a = kth_largest((offsets - scores) / scales, min_votes)`` is positive. Shifting every
member's threshold by ``c`` of its own scale (``offsets - c * scales``) flags exactly the
readings with ``a > c``: the vote becomes one number, whatever the members.

``calibrate`` chooses ``c`` on held-out normal readings (never fitted on). With their
``n`` decision scores sorted from the largest, ``c = a_[k]`` flags the readings above the
k-th largest; for a new normal reading exchangeable with them, the false-alarm rate of
that cut is ``Beta(k, n + 1 - k)``-distributed (the order statistics of a uniform
sample). ``k`` is the largest for which ``P(rate > target) <= 1 - confidence``, so the
threshold is stricter the fewer readings there are. When even ``k = 1`` (the largest
score) cannot give that guarantee, the cut is the largest score and the statement says
by how much the bound misses.

``statement`` is what ``train --json``, ``/model/info`` and ``/model/thresholds`` show:
``{"target", "expected", "upper_95", "n_calibration", "flagged", "method"}`` where
``expected`` is the mean of that Beta and ``upper_95`` its 95th percentile (for
thresholds chosen otherwise: the Clopper-Pearson bound of the count). Readings of a
stream are not independent (neighbouring windows share readings), so the bound holds
for the rate over a long run, and less tightly than its confidence says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from anomaly_api.data.errors import DataError
from anomaly_api.detection.voting import kth_largest

CONFIDENCE: Final = 0.95
UNKNOWN_METHOD: Final = "unknown"


class Thresholded(Protocol):
    """A detector whose thresholds decide (the ensemble, a time-aware window detector)."""

    offsets_: NDArray[np.float64]
    scales_: NDArray[np.float64]
    min_votes: int


class CalibrationError(DataError):
    """Calibration cannot be done (no normal readings); the message says what to do."""


@dataclass(frozen=True)
class Calibration:
    """New thresholds and what they are expected to flag on later normal readings."""

    offsets: NDArray[np.float64]
    statement: dict[str, Any]


def decision_scores(
    scores: NDArray[np.float64],
    offsets: NDArray[np.float64],
    scales: NDArray[np.float64],
    min_votes: int,
) -> NDArray[np.float64]:
    """The vote as one number per row: positive exactly when the detector flags it."""
    margins = (np.asarray(offsets) - np.asarray(scores)) / np.asarray(scales)
    return kth_largest(margins.reshape(len(scores), -1), min_votes)


def largest_safe_rank(n: int, target: float, confidence: float = CONFIDENCE) -> int:
    """The largest ``k`` with ``P(Beta(k, n + 1 - k) > target) <= 1 - confidence``; 0 when
    even ``k = 1`` does not (too few readings for the target)."""
    if n < 1:
        return 0
    ranks = np.arange(1, n + 1)
    upper = beta.ppf(confidence, ranks, n + 1 - ranks)
    safe = np.flatnonzero(upper <= target)
    return int(safe[-1]) + 1 if len(safe) else 0


def readings_needed(target: float, confidence: float = CONFIDENCE) -> int:
    """Fewest calibration readings for which the largest one bounds ``target``."""
    return int(np.ceil(np.log(1.0 - confidence) / np.log1p(-target)))


def statement(
    target: float | None, flagged: int, n: int, method: str, confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """The false-alarm statement for ``flagged`` of ``n`` held-out normal readings."""
    if n < 1:
        return unknown_statement(target)
    return {
        "target": target,
        "expected": (flagged + 1) / (n + 1),
        "upper_95": float(beta.ppf(confidence, flagged + 1, max(n - flagged, 1))),
        "n_calibration": int(n),
        "flagged": int(flagged),
        "method": method,
    }


def unknown_statement(target: float | None = None) -> dict[str, Any]:
    """What a model trained before the statement existed reports."""
    return {
        "target": target,
        "expected": None,
        "upper_95": None,
        "n_calibration": None,
        "flagged": None,
        "method": UNKNOWN_METHOD,
    }


def calibrate(
    detector: Thresholded,
    scores: NDArray[np.float64],
    target: float,
    *,
    where: str = "held-out later normal readings",
    confidence: float = CONFIDENCE,
) -> Calibration:
    """Thresholds for ``detector`` flagging at most ``target`` of later normal readings with
    probability ``confidence``, from its ``scores`` (shape (n, members)) of held-out
    normal readings. The detector itself is not changed."""
    if not 0.0 < target < 1.0:
        raise CalibrationError(f"target false-alarm rate must be in (0, 1), got {target:g}")
    n = len(scores)
    if n == 0:
        raise CalibrationError(
            "cannot calibrate a false-alarm rate without normal readings to calibrate on "
            "(every reading is labelled anomalous or there are too few)"
        )
    offsets = np.asarray(detector.offsets_, dtype=np.float64)
    scales = np.asarray(detector.scales_, dtype=np.float64)
    a = np.sort(decision_scores(scores, offsets, scales, detector.min_votes))[::-1]
    k = largest_safe_rank(n, target, confidence)
    cut = float(a[max(k, 1) - 1])
    flagged = int(np.sum(a > cut))
    method = f"order-statistic bound ({confidence:.0%}) on {n} {where}"
    if k == 0:
        method += (
            f"; too few to bound {target:g} at {confidence:.0%} (needs "
            f"{readings_needed(target, confidence)}): threshold at the most extreme of them"
        )
    return Calibration(
        offsets=offsets - cut * scales,
        statement=statement(target, flagged, n, method, confidence),
    )


def counted_statement(
    detector: Thresholded, scores: NDArray[np.float64], target: float | None, where: str
) -> dict[str, Any]:
    """The statement of ``detector``'s current thresholds, counted on its ``scores`` of
    normal readings (thresholds chosen otherwise than by ``calibrate``)."""
    n = len(scores)
    if n == 0:
        return unknown_statement(target)
    a = decision_scores(scores, detector.offsets_, detector.scales_, detector.min_votes)
    flagged = int(np.sum(a > 0))
    return statement(target, flagged, n, f"counted on {n} {where} (Clopper-Pearson bound)")


def stated(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """A model's false-alarm statement from its manifest's metrics; models trained before
    it was recorded report ``method: "unknown"``."""
    found = (metrics or {}).get("false_alarm_rate")
    if isinstance(found, dict) and "method" in found:
        return {**unknown_statement(), **found}
    return unknown_statement()


def describe(found: dict[str, Any]) -> str:
    """One line for the CLI: ``expected 0.99%, at most 2.95% (95%), ...``."""
    if found.get("expected") is None:
        return "unknown"
    target = "" if found.get("target") is None else f" (target {found['target']:.2%})"
    return (
        f"expected {found['expected']:.2%}, at most {found['upper_95']:.2%} with 95% "
        f"confidence{target}: {found['method']}"
    )
