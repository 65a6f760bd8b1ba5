"""Robust location and spread: the one place their normal-consistency constants live.

Two robust estimates of a standard deviation, both exact for normally distributed data
and both left unmoved by a few anomalies among the training rows:

* ``iqr_std``: the interquartile range over ``IQR_TO_STD`` = 2 Φ⁻¹(3/4) ≈ 1.349, the
  IQR of a standard normal distribution (as scikit-learn's ``RobustScaler`` with
  ``unit_variance=True``);
* ``mad_std``: the median absolute deviation over Φ⁻¹(3/4) ≈ 0.6745 (≈ 1.4826 · MAD),
  ``scipy.stats.median_abs_deviation(scale="normal")``.

``fit_robust_scaling`` standardises features as ``(X - median) / iqr_std``. A feature
whose IQR is zero but which still varies (a mostly constant reading with rare
excursions) falls back to its standard deviation; a constant feature cannot be scaled
and is refused. The point-wise ensemble, the fast path and the time-aware model's
channels all scale through it, so every path sees bit-for-bit the same scaled values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri
from scipy.stats import median_abs_deviation

NORMAL_UPPER_QUARTILE: Final = float(ndtri(0.75))
"""Φ⁻¹(3/4): the MAD of a standard normal distribution (the constant scipy divides by)."""
IQR_TO_STD: Final = 2.0 * NORMAL_UPPER_QUARTILE
"""IQR of the standard normal distribution, 1.3489795003921634."""
MAD_TO_STD: Final = 1.0 / NORMAL_UPPER_QUARTILE
"""Standard deviation per unit of MAD for normal data, 1.482602218505602."""


def iqr_std(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Interquartile range of each column over ``IQR_TO_STD``.

    ``np.percentile`` rather than ``scipy.stats.iqr``: scipy's own quantile differs in
    the last bit on some columns, and the fitted scale of the point-wise models must stay
    the one they were always fitted with.
    """
    q75, q25 = np.percentile(X, [75.0, 25.0], axis=0)
    result: NDArray[np.float64] = (q75 - q25) / IQR_TO_STD
    return result


def mad_std(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median absolute deviation of each column (or of a 1-D array) over Φ⁻¹(3/4)."""
    result: NDArray[np.float64] = median_abs_deviation(X, axis=0, scale="normal")
    return result


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
        ``iqr_std``, or the standard deviation where the IQR is zero.
    rule : ndarray of shape (n_features,)
        ``"iqr"`` or ``"std"`` per feature.

    Raises
    ------
    ValueError
        Some features are constant (every value equal); the message names them.
    """
    center = np.median(X, axis=0)
    iqr_scale = iqr_std(X)
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
