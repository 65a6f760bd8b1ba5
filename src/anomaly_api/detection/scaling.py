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
excursions) falls back to its standard deviation; a feature constant in training gets
``spread_floor`` of its value as its spread (rule ``"floor"``), so that any later change
of it is a large deviation. The point-wise ensemble, the fast path and the time-aware
model's channels all scale through it, so every path sees bit-for-bit the same scaled
values.
"""

from __future__ import annotations

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
SPREAD_FLOOR: Final = 1e-6
"""Spread of a feature constant in training, per unit of its magnitude (at least 1).

A constant reading gives no spread to learn, and a constant channel that moves IS
abnormal: the floor must make any real change a large deviation without dividing by
zero. One millionth of the value's magnitude sits just above float32 resolution
(≈ 1.2e-7), the precision most sensors and CSV writers carry, so a change in the sixth
significant digit or above is at least one unit of spread and a change of a thousandth
of the value is a thousand; rounding noise of float64 (≈ 1e-16) stays far below it.
``max(|value|, 1)`` keeps a channel constant at 0 from getting a zero floor.
"""


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


def spread_floor(center: NDArray[np.float64]) -> NDArray[np.float64]:
    """The spread given to features constant at ``center``: ``SPREAD_FLOOR`` of their
    magnitude, at least ``SPREAD_FLOOR``."""
    result: NDArray[np.float64] = np.maximum(np.abs(center), 1.0) * SPREAD_FLOOR
    return result


def constant_columns(X: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which columns of ``X`` hold one value only.

    ``np.ptp`` rather than the standard deviation: an exactly constant column can still
    get a tiny non-zero standard deviation from rounding in the mean.
    """
    result: NDArray[np.bool_] = np.ptp(X, axis=0) == 0
    return result


def fit_robust_scaling(
    X: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]]:
    """Per-feature centre, scale and the rule that gave each scale.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    center : ndarray of shape (n_features,)
        Median of each feature.
    scale : ndarray of shape (n_features,)
        ``iqr_std``; the standard deviation where the IQR is zero; ``spread_floor`` of
        the value where the feature is constant.
    rule : ndarray of shape (n_features,)
        ``"iqr"``, ``"std"`` or ``"floor"`` per feature.
    """
    center = np.median(X, axis=0)
    iqr_scale = iqr_std(X)
    std = X.std(axis=0)
    use_iqr = iqr_scale > 0
    constant = constant_columns(X)
    scale = np.where(constant, spread_floor(center), np.where(use_iqr, iqr_scale, std))
    rule = np.where(constant, "floor", np.where(use_iqr, "iqr", "std"))
    return center, scale, rule


def apply_scaling(
    X: NDArray[np.float64], center: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``(X - center) / scale`` as a new C-contiguous float64 array."""
    result: NDArray[np.float64] = np.ascontiguousarray((X - center) / scale)
    return result
