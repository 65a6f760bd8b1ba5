"""Window features: what a trailing window of readings shows about its newest reading.

For a reading ``t`` of a stream and each channel ``c`` (values already scaled, one unit
= one robust standard deviation of the channel on the training data), with ``W`` the
window and ``s`` the short window:

==================  =====================================================================
``level``           ``x[t] - median(x[t-W+1 .. t-1])``: the reading against its recent level
``spread``          ``log(median(|x[i] - x[i-1]|, i = t-W+2 .. t) + 1e-6)``: recent
                    variability as the typical step (one spike or one step of a shift
                    barely moves it, unlike a rolling std); a frozen channel has none
``flat``            how many of the last ``W-1`` steps left the value exactly unchanged,
                    counted back from ``t`` (a run of ``k`` gives ``k + 1`` equal readings)
``shift``           ``mean(x[t-s+1 .. t]) - median(x[t-W+1 .. t-s])``: a level that moved
                    and stayed (short against long, as a CUSUM would see it)
``residual``        the reading's residual against the other channels (relations between
                    channels): ``x[t] @ R.T`` for the model's relation matrix ``R`` (the
                    leave-one-out linear regression of each channel on the others, as
                    MSET-style monitors do, or the PCA residual projector ``I - V V^T``)
``residual_mean``   ``mean(residual[t-s+1 .. t])``: a relation that stays broken
==================  =====================================================================

Every feature of reading ``t`` uses only readings ``t-W+1 .. t`` of the same segment
(no reading after it, none across a gap), so the features of a whole training frame
(computed here in one vectorised pass) and those of the newest reading of a window of
``W`` readings held by the service are the same numbers. Readings with fewer than
``W - 1`` readings before them in their segment have no window features (``valid`` is
False). This module imports numpy only.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FEATURE_KINDS: Final[tuple[str, ...]] = (
    "level",
    "spread",
    "flat",
    "shift",
    "residual",
    "residual_mean",
)
DEFAULT_FEATURES: Final[tuple[str, ...]] = ("level", "flat", "shift", "residual", "residual_mean")
"""Measured best on the synthetic data (docs/time-aware.md); ``spread`` is opt-in."""
SPREAD_EPS: Final = 1e-6
MIN_WINDOW: Final = 4


def check_window(window: int, short: int) -> None:
    """Refuse a window too small for its features or a short window that does not fit."""
    if window < MIN_WINDOW:
        raise ValueError(f"window must be at least {MIN_WINDOW} readings, got {window}")
    if not 1 <= short < window - 1:
        raise ValueError(f"short window must be in [1, {window - 2}], got {short}")


def feature_names(channels: list[str], kinds: tuple[str, ...]) -> list[str]:
    """``"<channel>:<kind>"`` for every channel and kind, channel-major."""
    return [f"{channel}:{kind}" for channel in channels for kind in kinds]


def _segment_features(
    values: NDArray[np.float64],
    residuals: NDArray[np.float64] | None,
    window: int,
    short: int,
    kinds: tuple[str, ...],
) -> NDArray[np.float64]:
    """Features of rows ``window-1 ..`` of one segment, shape (m, n_channels, n_kinds)."""
    # views: (m, n_channels, window); the last element of each window is reading t
    views = sliding_window_view(values, window, axis=0)
    rviews = None if residuals is None else sliding_window_view(residuals, window, axis=0)
    return _features(views, rviews, window, short, kinds)


def _features(
    views: NDArray[np.float64],
    rviews: NDArray[np.float64] | None,
    window: int,
    short: int,
    kinds: tuple[str, ...],
) -> NDArray[np.float64]:
    """The features of windows ``views`` (and their residuals' ``rviews``), each of shape
    (m, n_channels, window), the newest reading last; shape (m, n_channels, n_kinds)."""
    m, n_channels = views.shape[0], views.shape[1]
    out = np.empty((m, n_channels, len(kinds)))
    for k, kind in enumerate(kinds):
        if kind == "level":
            out[:, :, k] = views[..., -1] - _median(views[..., :-1])
        elif kind == "spread":
            steps = np.abs(np.diff(views, axis=-1))
            out[:, :, k] = np.log(np.median(steps, axis=-1) + SPREAD_EPS)
        elif kind == "flat":
            same = views[..., 1:] == views[..., :-1]
            out[:, :, k] = np.cumprod(same[..., ::-1], axis=-1).sum(axis=-1)
        elif kind == "shift":
            recent = views[..., window - short :].mean(axis=-1)
            out[:, :, k] = recent - _median(views[..., : window - short])
        elif kind in ("residual", "residual_mean"):
            if rviews is None:
                raise ValueError(f"feature {kind!r} needs the relation matrix (residual_projector)")
            if kind == "residual":
                out[:, :, k] = rviews[..., -1]
            else:
                out[:, :, k] = rviews[..., window - short :].mean(axis=-1)
        else:
            raise ValueError(f"unknown window feature {kind!r}; known: {FEATURE_KINDS}")
    return out


def _median(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.median(values, axis=-1)``, the same numbers: for an odd count the middle order
    statistic (what ``np.median`` takes the mean of alone), NaN where the last axis holds
    one (as ``np.median``'s own check); an even count goes to ``np.median`` itself."""
    n = values.shape[-1]
    if n % 2 == 0:
        result: NDArray[np.float64] = np.median(values, axis=-1)
        return result
    part = np.partition(values, (n // 2, n - 1), axis=-1)
    middle: NDArray[np.float64] = part[..., n // 2]
    missing = np.isnan(part[..., -1])
    if missing.any():
        middle = np.where(missing, np.nan, middle)
    return middle


def newest_features(
    values: NDArray[np.float64],
    *,
    window: int,
    short: int,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    residual_projector: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """The features of the last row of ``values``, exactly ``window`` rows of one segment.

    The numbers of that row of ``window_features`` (same shape (1, n_channels *
    len(kinds)), bit for bit): the same reductions over the same strides -- ``values.T``
    is the one window ``sliding_window_view`` gives -- without the views and the NaN
    frame around them, for a service scoring one new reading of a stream.
    """
    data = np.ascontiguousarray(values, dtype=np.float64)
    if len(data) != window:
        raise ValueError(f"expected exactly {window} readings, got {len(data)}")
    residuals = data @ residual_projector.T if residual_projector is not None else None
    rviews = None if residuals is None else residuals.T[None]
    return _features(data.T[None], rviews, window, short, kinds).reshape(1, -1)


def window_features(
    values: NDArray[np.float64],
    segments: NDArray[np.int64] | None,
    *,
    window: int,
    short: int,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    residual_projector: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Window features of every row, and which rows have a full window.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_channels)
        Scaled readings in time order within each segment.
    segments : ndarray of shape (n_rows,) or None
        Segment id of each row (rows of one segment need not be adjacent but keep
        their order); None means one segment.
    window, short : int
        ``W`` and ``s`` of the module docstring.
    kinds : tuple of str
        Which features, in this order.
    residual_projector : ndarray of shape (n_channels, n_channels), optional
        ``R``: residuals are ``values @ R.T``; needed for the residual features.

    Returns
    -------
    features : ndarray of shape (n_rows, n_channels * len(kinds))
        Channel-major (all kinds of channel 0, then channel 1, ...); NaN where invalid.
    valid : ndarray of shape (n_rows,)
        True where the row has ``window - 1`` readings before it in its segment.
    """
    check_window(window, short)
    data = np.ascontiguousarray(values, dtype=np.float64)
    n_rows, n_channels = data.shape
    residuals = data @ residual_projector.T if residual_projector is not None else None
    features = np.full((n_rows, n_channels, len(kinds)), np.nan)
    valid = np.zeros(n_rows, dtype=np.bool_)
    groups = [np.arange(n_rows)] if segments is None else _segment_rows(segments)
    for rows in groups:
        if len(rows) < window:
            continue
        seg_res = residuals[rows] if residuals is not None else None
        features[rows[window - 1 :]] = _segment_features(data[rows], seg_res, window, short, kinds)
        valid[rows[window - 1 :]] = True
    return features.reshape(n_rows, n_channels * len(kinds)), valid


def _segment_rows(segments: NDArray[np.int64]) -> list[NDArray[np.intp]]:
    order = np.argsort(segments, kind="stable")
    bounds = np.flatnonzero(np.diff(segments[order])) + 1
    return list(np.split(order, bounds))


def gap_starts(
    timestamps: NDArray[np.float64], median_interval: float, max_gap_factor: float
) -> NDArray[np.int64]:
    """Segment ids of readings of one stream: a new segment after each long gap."""
    steps = np.diff(timestamps, prepend=timestamps[:1])
    return np.cumsum(steps > max_gap_factor * median_interval).astype(np.int64)
