"""Which feature: each feature's share of a row's anomaly, and the row's severity.

Contributions of a row with scaled values ``z`` (``(x - center_) / scale_``, robust
z-scores) are::

    c_j = z_j²                 + r_j²      (the second term only with the PCA member)
    share_j = c_j / sum_k c_k             (1 / n_features each when every c_j is 0)

where ``r`` is the row's PCA residual (``Q = sum_j r_j²``, the SPE), so a feature
counts both for how far it is from its own median and for how far it is from what the
other features, through the PCA model, say it should be (a correlation break shows up
in ``r`` even when each value is plausible alone). The rule is the same for every row
of a model; shares are non-negative and sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.voting import ONE, ZERO


def feature_contributions(
    scaled: NDArray[np.float64], residual: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """Per-feature shares (rows sum to 1) from scaled values and, optionally, PCA residuals."""
    weight = scaled * scaled
    if residual is not None:
        weight += residual * residual
    total = np.add.reduce(weight, axis=1, keepdims=True)
    # The usual case, every total positive and finite (NaN fails both), without errstate's
    # cost: two reductions, fewer NumPy calls than comparing each total.
    lowest = np.minimum.reduce(total, axis=None, initial=np.inf)
    if lowest > 0.0 and np.maximum.reduce(total, axis=None, initial=0.0) < np.inf:
        shares: NDArray[np.float64] = weight / total
        return shares
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        shares = weight / total
    # All zero (a row at the median) or overflowing: fall back to equal shares, or to
    # equal shares among the infinite terms.
    bad = ~np.isfinite(shares).all(axis=1) | (total[:, 0] <= 0.0)
    infinite = np.isinf(weight[bad])
    counts = infinite.sum(axis=1, keepdims=True)
    uniform = np.full(infinite.shape, 1.0 / weight.shape[1])
    shares[bad] = np.where(counts > 0, infinite / np.maximum(counts, 1), uniform)
    return shares


def severity_from_score(anomaly_score: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a / (1 + a)`` with ``a = max(anomaly_score, 0)``: in [0, 1), monotone, 0 when normal."""
    positive = np.maximum(anomaly_score, ZERO)
    if np.maximum.reduce(positive, axis=None, initial=0.0) < np.inf:  # no infinity, no NaN
        result: NDArray[np.float64] = positive / (ONE + positive)  # without errstate's cost
        return result
    with np.errstate(invalid="ignore"):
        result = np.where(np.isinf(positive), 1.0, positive / (1.0 + positive))
    return result


def top_contributions(
    shares: NDArray[np.float64], feature_names: Sequence[str], k: int | None = None
) -> list[tuple[str, float]]:
    """One row's ``(feature, share)`` pairs, largest first (ties in feature order), at most k."""
    if shares.ndim != 1 or shares.shape[0] != len(feature_names):
        raise ValueError(f"expected {len(feature_names)} shares, got shape {shares.shape}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-shares, kind="stable")[:k]
    return [(str(feature_names[i]), float(shares[i])) for i in order.tolist()]
