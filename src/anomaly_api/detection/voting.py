"""Combiners over an ``(n_samples, n_detectors)`` matrix.

They are plain functions (as in PyOD's ``combination`` module) so that the reference
ensemble and the fast inference path share one definition of the vote and the score.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _constant(value: float) -> NDArray[np.float64]:
    """``value`` as a read-only 0-d float64 array: as an operand, a Python float costs
    NumPy a scalar conversion on each call (the results are the same)."""
    array = np.full((), value)
    array.flags.writeable = False
    return array


ZERO = _constant(0.0)
ONE = _constant(1.0)


def kth_largest(margins: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Return the ``k``-th largest value of each row (``k`` counts from 1).

    The ``k``-th largest signed margin is positive exactly when at least ``k`` margins
    are positive, so it is a continuous score whose sign is the ``k``-of-n vote.
    """
    n_detectors = margins.shape[1]
    if not 1 <= k <= n_detectors:
        raise ValueError(f"k must be in [1, {n_detectors}], got {k}")
    ordered = margins.copy()  # ``np.partition`` is this, through one more dispatch
    ordered.partition(n_detectors - k, axis=1)
    result: NDArray[np.float64] = ordered[:, n_detectors - k]
    return result


def confidence_from_score(anomaly_score: NDArray[np.float64]) -> NDArray[np.float64]:
    """Confidence in the decision: ``sigmoid(|anomaly_score|)``, in ``[0.5, 1)``.

    It is 0.5 on the decision boundary and grows monotonically with the distance from
    it, whichever side the sample falls on.
    """
    result: NDArray[np.float64] = ONE / (ONE + np.exp(-np.abs(anomaly_score)))
    return result
