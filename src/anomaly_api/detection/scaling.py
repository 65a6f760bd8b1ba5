"""Robust per-feature standardisation, fitted on the training rows.

``scaled = (X - center) / scale`` with ``center`` the median and ``scale`` the
interquartile range divided by 1.349 (the IQR of a standard normal distribution), so
that normally distributed features come out with unit spread while anomalies in the
training rows do not inflate it (as scikit-learn's ``RobustScaler`` with
``unit_variance=True``). A feature whose IQR is zero but which still varies (a mostly
constant reading with rare excursions) falls back to its standard deviation; a
constant feature cannot be scaled and is refused.

The same two functions serve the reference ensemble and the fast path, so both see
bit-for-bit the same scaled values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

IQR_TO_STD = 1.3489795003921634
"""IQR of the standard normal distribution (2 * 0.6744897501960817)."""


def fit_robust_scaling(
    X: NDArray[np.float64], feature_names: Sequence[str] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]]:
    """Per-feature centre, scale and the rule that gave each scale.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    feature_names : sequence of str, optional
        Used only to name constant columns in the error.

    Returns
    -------
    center : ndarray of shape (n_features,)
        Median of each feature.
    scale : ndarray of shape (n_features,)
        ``IQR / 1.349``, or the standard deviation where the IQR is zero.
    rule : ndarray of shape (n_features,)
        ``"iqr"`` or ``"std"`` per feature.

    Raises
    ------
    ValueError
        Some features are constant (every value equal); the message names them.
    """
    center = np.median(X, axis=0)
    q75, q25 = np.percentile(X, [75.0, 25.0], axis=0)
    iqr_scale = (q75 - q25) / IQR_TO_STD
    std = X.std(axis=0)
    use_iqr = iqr_scale > 0
    # Exactly constant columns can still get a tiny non-zero std from rounding in the
    # mean; they are refused, not scaled by 1e-17.
    constant = np.flatnonzero(np.ptp(X, axis=0) == 0)
    scale = np.where(use_iqr, iqr_scale, std)
    if constant.size:
        names = [
            feature_names[i] if feature_names is not None else f"column {i}"
            for i in constant.tolist()
        ]
        raise ValueError(f"constant features cannot be scaled; drop them: {', '.join(names)}")
    rule = np.where(use_iqr, "iqr", "std")
    return center, scale, rule


def apply_scaling(
    X: NDArray[np.float64], center: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``(X - center) / scale`` as a new C-contiguous float64 array."""
    result: NDArray[np.float64] = np.ascontiguousarray((X - center) / scale)
    return result
