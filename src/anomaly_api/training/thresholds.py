"""Tune each detector's threshold on labelled validation scores.

A detector votes "anomaly" when its ``score_samples`` is *below* its threshold, so a
threshold is placed halfway between two neighbouring observed scores.

Max F1 on one validation part can sit right on the normal scores' tail: the normal
readings of a later part reach a little deeper, and the false-positive rate there is
many times the validation part's (docs/time-aware.md, seed 42). ``normal_floor`` bounds
that: the threshold is never looser than ``median - k * robust sd`` of the validation
part's normal scores (robust sd = ``mad_std``), an extrapolation of the normal tail
that does not rest on the few most extreme normal readings.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.scaling import mad_std


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


def normal_floor_threshold(scores: NDArray[np.float64], y: NDArray[np.int64], k: float) -> float:
    """``median - k * mad_std`` of the normal rows' ``scores``: the loosest threshold
    ``floored_f1_threshold`` allows."""
    if k <= 0.0:
        raise ValueError(f"the normal floor must be a positive number of sd, got {k}")
    normal = scores[y == 0]
    if len(normal) == 0:
        raise ValueError("cannot place a normal floor without normal rows")
    median = float(np.median(normal))
    return median - k * float(mad_std(normal))


def floored_f1_threshold(scores: NDArray[np.float64], y: NDArray[np.int64], k: float) -> float:
    """The stricter (lower) of the max-F1 threshold and the normal floor for ``k``."""
    return min(best_f1_threshold(scores, y), normal_floor_threshold(scores, y, k))


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
    normal_floor: float | None = None,
) -> NDArray[np.float64]:
    """One threshold per column of ``detector_scores`` (shape (n_samples, n_detectors)).

    Maximises each detector's F1 by default (never looser than the ``normal_floor`` of
    ``normal_floor_threshold`` when given), or meets ``target_fpr`` when given.
    """
    columns = detector_scores.T
    if target_fpr is None and normal_floor is not None:
        return np.array([floored_f1_threshold(col, y, normal_floor) for col in columns])
    if target_fpr is None:
        return np.array([best_f1_threshold(col, y) for col in columns])
    return np.array([target_fpr_threshold(col, y, target_fpr) for col in columns])
