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
``lag_residual``    the reading's residual off a dynamic PCA: the PCA of the lagged
                    vectors ``x[t-L+1 .. t]`` of every channel (``L`` lags), the residual
                    of the newest reading's block (``v[t] @ R_L.T``, ``v[t]`` the lagged
                    vector, channel-major, oldest reading first): relations across
                    channels *and* time, each channel's part of the SPE (Q) statistic
``lag_residual_mean``  ``mean(lag_residual[t-s+1 .. t])``
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
    "lag_residual",
    "lag_residual_mean",
)
LAG_KINDS: Final[tuple[str, ...]] = ("lag_residual", "lag_residual_mean")
"""The features of the dynamic PCA (``lag_projector``)."""
DEFAULT_FEATURES: Final[tuple[str, ...]] = ("level", "flat", "shift", "residual", "residual_mean")
"""Measured best on the synthetic data (docs/time-aware.md); ``spread`` is opt-in."""
SPREAD_EPS: Final = 1e-6
MIN_WINDOW: Final = 4


def check_window(window: int, short: int, lags: int = 1) -> None:
    """Refuse a window too small for its features, a short window that does not fit, or
    more lags than leave every lagged vector of the short window inside the window."""
    if window < MIN_WINDOW:
        raise ValueError(f"window must be at least {MIN_WINDOW} readings, got {window}")
    if not 1 <= short < window - 1:
        raise ValueError(f"short window must be in [1, {window - 2}], got {short}")
    if not 1 <= lags <= window - short + 1:
        raise ValueError(f"lags must be in [1, {window - short + 1}], got {lags}")


def lagged_vectors(values: NDArray[np.float64], lags: int) -> NDArray[np.float64]:
    """``x[t-L+1 .. t]`` of every channel for rows ``L-1 ..`` of one segment, channel-major
    (oldest reading first), shape (n_rows - L + 1, n_channels * L)."""
    views = sliding_window_view(values, lags, axis=0)
    return np.ascontiguousarray(views).reshape(len(views), -1)


def lag_residuals(
    values: NDArray[np.float64], lags: int, lag_projector: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``lagged_vectors(values) @ lag_projector.T`` for every row of one segment, NaN for
    its first ``L - 1`` rows (no full lag yet), shape (n_rows, n_channels)."""
    out = np.full((len(values), lag_projector.shape[0]), np.nan)
    if len(values) >= lags:
        out[lags - 1 :] = lagged_vectors(values, lags) @ lag_projector.T
    return out


def feature_names(channels: list[str], kinds: tuple[str, ...]) -> list[str]:
    """``"<channel>:<kind>"`` for every channel and kind, channel-major."""
    return [f"{channel}:{kind}" for channel in channels for kind in kinds]


def _segment_features(
    values: NDArray[np.float64],
    residuals: NDArray[np.float64] | None,
    lagged: NDArray[np.float64] | None,
    *,
    window: int,
    short: int,
    kinds: tuple[str, ...],
) -> NDArray[np.float64]:
    """Features of rows ``window-1 ..`` of one segment, shape (m, n_channels, n_kinds)."""
    # views: (m, n_channels, window); the last element of each window is reading t
    views = sliding_window_view(values, window, axis=0)
    rviews = None if residuals is None else sliding_window_view(residuals, window, axis=0)
    lviews = None if lagged is None else sliding_window_view(lagged, window, axis=0)
    return _features(views, rviews, lviews, window=window, short=short, kinds=kinds)


def _features(
    views: NDArray[np.float64],
    rviews: NDArray[np.float64] | None,
    lviews: NDArray[np.float64] | None,
    *,
    window: int,
    short: int,
    kinds: tuple[str, ...],
) -> NDArray[np.float64]:
    """The features of windows ``views`` (their residuals' ``rviews``, their dynamic PCA
    residuals' ``lviews``), each of shape (m, n_channels, window), the newest reading
    last; shape (m, n_channels, n_kinds)."""
    m, n_channels = views.shape[0], views.shape[1]
    out = np.empty((m, n_channels, len(kinds)))
    for k, kind in enumerate(kinds):
        if kind == "level":
            out[:, :, k] = views[..., -1] - _median(views[..., :-1])
        elif kind == "spread":
            steps = np.abs(np.diff(views, axis=-1))
            out[:, :, k] = np.log(np.median(steps, axis=-1) + SPREAD_EPS)
        elif kind == "flat":
            if (views[..., -1] == views[..., -2]).any():
                same = views[..., 1:] == views[..., :-1]
                out[:, :, k] = np.cumprod(same[..., ::-1], axis=-1).sum(axis=-1)
            else:  # no newest reading repeats the one before it: every count is 0
                out[:, :, k] = 0.0
        elif kind == "shift":
            recent = _mean(views[..., window - short :])
            out[:, :, k] = recent - _median(views[..., : window - short])
        elif kind in ("residual", "residual_mean", "lag_residual", "lag_residual_mean"):
            series = lviews if kind in LAG_KINDS else rviews
            if series is None:
                needed = "lag_projector" if kind in LAG_KINDS else "residual_projector"
                raise ValueError(f"feature {kind!r} needs the relation matrix ({needed})")
            if kind.endswith("_mean"):
                out[:, :, k] = _mean(series[..., window - short :])
            else:
                out[:, :, k] = series[..., -1]
        else:
            raise ValueError(f"unknown window feature {kind!r}; known: {FEATURE_KINDS}")
    return out


def _mean(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values.mean(axis=-1)``, the same numbers (its sum over the last axis divided by the
    count) without the method's wrapper, which costs more than the sum on a short window."""
    result: NDArray[np.float64] = np.add.reduce(values, axis=-1) / values.shape[-1]
    return result


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
    lags: int = 1,
    lag_projector: NDArray[np.float64] | None = None,
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
    lagged = lag_residuals(data, lags, lag_projector) if lag_projector is not None else None
    lviews = None if lagged is None else lagged.T[None]
    features = _features(data.T[None], rviews, lviews, window=window, short=short, kinds=kinds)
    return features.reshape(1, -1)


def window_features(
    values: NDArray[np.float64],
    segments: NDArray[np.int64] | None,
    *,
    window: int,
    short: int,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    residual_projector: NDArray[np.float64] | None = None,
    lags: int = 1,
    lag_projector: NDArray[np.float64] | None = None,
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
    lags : int
        ``L`` of the dynamic PCA's lagged vectors.
    lag_projector : ndarray of shape (n_channels, n_channels * lags), optional
        ``R_L`` (see ``lag_residuals``); needed for the ``lag_residual`` features.

    Returns
    -------
    features : ndarray of shape (n_rows, n_channels * len(kinds))
        Channel-major (all kinds of channel 0, then channel 1, ...); NaN where invalid.
    valid : ndarray of shape (n_rows,)
        True where the row has ``window - 1`` readings before it in its segment.
    """
    check_window(window, short, lags if lag_projector is not None else 1)
    data = np.ascontiguousarray(values, dtype=np.float64)
    n_rows, n_channels = data.shape
    residuals = data @ residual_projector.T if residual_projector is not None else None
    features = np.full((n_rows, n_channels, len(kinds)), np.nan)
    valid = np.zeros(n_rows, dtype=np.bool_)
    groups = segment_rows(segments, n_rows)
    for rows in groups:
        if len(rows) < window:
            continue
        seg_res = residuals[rows] if residuals is not None else None
        seg_lag = (
            lag_residuals(data[rows], lags, lag_projector) if lag_projector is not None else None
        )
        features[rows[window - 1 :]] = _segment_features(
            data[rows], seg_res, seg_lag, window=window, short=short, kinds=kinds
        )
        valid[rows[window - 1 :]] = True
    return features.reshape(n_rows, n_channels * len(kinds)), valid


def segment_rows(segments: NDArray[np.int64] | None, n_rows: int) -> list[NDArray[np.intp]]:
    """Row indices of each segment, in order (all ``n_rows`` rows for ``None``)."""
    if segments is None:
        return [np.arange(n_rows)]
    order = np.argsort(segments, kind="stable")
    bounds = np.flatnonzero(np.diff(segments[order])) + 1
    return list(np.split(order, bounds))


def gap_starts(
    timestamps: NDArray[np.float64], median_interval: float, max_gap_factor: float
) -> NDArray[np.int64]:
    """Segment ids of readings of one stream: a new segment after each long gap."""
    steps = np.diff(timestamps, prepend=timestamps[:1])
    return np.cumsum(steps > max_gap_factor * median_interval).astype(np.int64)
