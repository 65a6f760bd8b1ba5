"""Seeded synthetic sensor readings with labelled, injected anomalies.

Eight channels are driven by three latent factors — a daily cycle, an AR(1) process
for the machine's load and a slow drift — plus channel noise, so that the channels
are correlated the way physical sensors are. The clean signal is standardized with
the mean and standard deviation of the rows that stay normal, then anomalies are
injected in those standardized units (see ``anomaly_api.data.anomalies``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.anomalies import (
    ANOMALY_KINDS,
    NORMAL_KIND,
    inject_anomalies,
    plan_segments,
    row_kinds,
)

SENSOR_CHANNELS: Final[tuple[str, ...]] = (
    "temperature",
    "pressure",
    "humidity",
    "vibration",
    "flow_rate",
    "voltage",
    "current",
    "rpm",
)
LABEL_COLUMN: Final = "is_anomaly"
KIND_COLUMN: Final = "anomaly_kind"
TIMESTAMP_COLUMN: Final = "timestamp"
START_TIME: Final = pd.Timestamp("2024-01-01T00:00:00Z")
INTERVAL: Final = pd.Timedelta(minutes=5)
_ROWS_PER_DAY: Final = 288

# Loadings of each channel on the latent factors (daily cycle, load, drift, supply),
# followed by the standard deviation of its own noise. Moderate loadings keep the
# channels correlated without putting the normal data on a thin manifold.
_LOADINGS: Final[dict[str, tuple[float, float, float, float, float]]] = {
    #              daily   load  drift  supply noise
    "temperature": (0.70, 0.30, 0.30, 0.00, 0.50),
    "pressure": (0.15, 0.70, 0.00, 0.00, 0.55),
    "humidity": (-0.65, 0.00, 0.25, 0.00, 0.60),
    "vibration": (0.00, 0.60, 0.00, 0.00, 0.65),
    "flow_rate": (0.10, 0.75, 0.00, 0.00, 0.50),
    "voltage": (0.00, 0.00, 0.30, 0.75, 0.50),
    "current": (0.00, 0.35, 0.00, -0.55, 0.65),
    "rpm": (0.00, 0.70, 0.10, 0.00, 0.55),
}


def _ar1(rng: np.random.Generator, n: int, phi: float) -> NDArray[np.float64]:
    """A stationary AR(1) series with unit variance."""
    shocks = rng.normal(scale=np.sqrt(1.0 - phi**2), size=n)
    series = np.empty(n)
    series[0] = rng.normal()
    for i in range(1, n):
        series[i] = phi * series[i - 1] + shocks[i]
    return series


def _latent_factors(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Columns: daily cycle, load, drift, supply; each roughly zero mean, unit variance."""
    t = np.arange(n, dtype=np.float64)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    daily = np.sqrt(2.0) * np.sin(2.0 * np.pi * t / _ROWS_PER_DAY + phase)
    load = _ar1(rng, n, phi=0.98)
    # Slow drift: a heavily smoothed random walk, rescaled to unit variance.
    walk = np.cumsum(rng.normal(size=n))
    drift = (walk - walk.mean()) / max(float(walk.std()), 1e-12)
    supply = _ar1(rng, n, phi=0.9)
    return np.column_stack([daily, load, drift, supply])


def clean_signal(rng: np.random.Generator, n_rows: int) -> NDArray[np.float64]:
    """The anomaly-free signal, shape (n_rows, len(SENSOR_CHANNELS)), not standardized."""
    factors = _latent_factors(rng, n_rows)
    loadings = np.array([_LOADINGS[name][:4] for name in SENSOR_CHANNELS])
    noise_std = np.array([_LOADINGS[name][4] for name in SENSOR_CHANNELS])
    noise = rng.normal(size=(n_rows, len(SENSOR_CHANNELS))) * noise_std
    signal: NDArray[np.float64] = factors @ loadings.T + noise
    return signal


def generate_sensor_data(
    n_rows: int = 10_000, *, seed: int = 42, anomaly_fraction: float = 0.05
) -> pd.DataFrame:
    """Generate standardized sensor readings with labelled anomalies.

    Parameters
    ----------
    n_rows : int, default=10_000
        Readings, one every five minutes from 2024-01-01 00:00 UTC.
    seed : int, default=42
        Seed of the numpy Generator; the same seed gives the same frame.
    anomaly_fraction : float, default=0.05
        Share of rows turned into anomalies, split evenly across the kinds in
        ``ANOMALY_KINDS`` (spike, level_shift, correlation_break, stuck_sensor).

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp``, the ``SENSOR_CHANNELS``, ``is_anomaly`` (0/1) and
        ``anomaly_kind`` (``"normal"`` or the kind).
    """
    if n_rows < 10:
        raise ValueError(f"n_rows must be at least 10, got {n_rows}")
    if not 0.0 <= anomaly_fraction < 0.5:
        raise ValueError(f"anomaly_fraction must be in [0, 0.5), got {anomaly_fraction}")
    rng = np.random.default_rng(seed)
    signal = clean_signal(rng, n_rows)
    segments = plan_segments(rng, n_rows, round(n_rows * anomaly_fraction))
    kinds = row_kinds(segments, n_rows)
    normal = signal[kinds == NORMAL_KIND]
    standardized = (signal - normal.mean(axis=0)) / normal.std(axis=0)
    values = inject_anomalies(rng, standardized, segments)
    frame = pd.DataFrame(values, columns=list(SENSOR_CHANNELS))
    frame.insert(0, TIMESTAMP_COLUMN, pd.date_range(START_TIME, periods=n_rows, freq=INTERVAL))
    frame[LABEL_COLUMN] = (kinds != NORMAL_KIND).astype(np.int64)
    frame[KIND_COLUMN] = kinds.astype(object)
    return frame


__all__ = [
    "ANOMALY_KINDS",
    "KIND_COLUMN",
    "LABEL_COLUMN",
    "SENSOR_CHANNELS",
    "TIMESTAMP_COLUMN",
    "generate_sensor_data",
]
