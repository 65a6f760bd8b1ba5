"""Tune each detector's threshold on labelled validation scores.

A detector votes "anomaly" when its ``score_samples`` is *below* its threshold, so a
threshold is placed halfway between two neighbouring observed scores.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def best_f1_threshold(scores: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    """Threshold on ``scores`` (lower = more abnormal) that maximises F1 on ``y``.

    Ties in F1 go to the lowest threshold, the one flagging the fewest rows.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("cannot tune for F1 without anomalous rows")
    true_pos = np.cumsum(y[order])
    flagged = np.arange(1, len(scores) + 1)
    f1 = 2.0 * true_pos / (flagged + positives)
    # Only cut where the next score differs: equal scores must fall on the same side.
    cuttable = np.append(sorted_scores[1:] > sorted_scores[:-1], True)
    f1 = np.where(cuttable, f1, -1.0)
    k = int(np.argmax(f1))
    if k == len(scores) - 1:
        return float(sorted_scores[-1] + 1.0)
    return float((sorted_scores[k] + sorted_scores[k + 1]) / 2.0)


def target_fpr_threshold(scores: NDArray[np.float64], y: NDArray[np.int64], fpr: float) -> float:
    """Threshold that flags at most a share ``fpr`` of the normal rows."""
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"target false-positive rate must be in (0, 1), got {fpr}")
    normal = np.sort(scores[y == 0])
    if len(normal) == 0:
        raise ValueError("cannot tune for a false-positive rate without normal rows")
    k = int(np.floor(fpr * len(normal)))
    if k == 0:
        return float(normal[0])
    return float((normal[k - 1] + normal[k]) / 2.0)


def tune_thresholds(
    detector_scores: NDArray[np.float64],
    y: NDArray[np.int64],
    *,
    target_fpr: float | None = None,
) -> NDArray[np.float64]:
    """One threshold per column of ``detector_scores`` (shape (n_samples, n_detectors)).

    Maximises each detector's F1 by default, or meets ``target_fpr`` when given.
    """
    columns = detector_scores.T
    if target_fpr is None:
        return np.array([best_f1_threshold(col, y) for col in columns])
    return np.array([target_fpr_threshold(col, y, target_fpr) for col in columns])
