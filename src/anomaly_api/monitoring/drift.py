"""Input drift: a fixed-memory window of recent rows compared with the training data.

What the artifact stores (``DriftReference``, built once by ``build_drift_reference``
from the training matrix):

* a **quantile sketch** of each feature: its ``m`` mid-quantiles ``(i + 0.5) / m``
  (``m = min(n_rows, sketch_rows)``, 1,000 by default; the sorted column itself when
  the data are smaller). Deterministic (no sampling seed) and ``m`` numbers per feature;
  the two-sample Kolmogorov-Smirnov test runs against it.
* **decile bin edges** of each feature and the share of training rows in each bin,
  for the population stability index (PSI).

``DriftTracker`` keeps the last ``window_rows`` inputs in a NumPy ring buffer
(``window_rows x n_features`` float64, allocated once), updated a batch at a time,
and computes per feature:

* ``psi = sum((w - r) * ln(w / r))`` over the ten training-decile bins, shares floored
  at 1e-4 so an empty bin stays finite;
* ``ks_statistic, ks_pvalue`` from ``scipy.stats.ks_2samp(window, sketch,
  method="asymp")``: the asymptotic Kolmogorov distribution, accurate at the
  hundreds of rows a window holds and cheap, where the exact one costs O(n·m).
  The test assumes independent rows; consecutive readings of a process are not,
  so p-values are too small on autocorrelated streams (read the statistic too).

A feature is ``drifted`` once the window holds ``min_rows`` rows and either its PSI
reaches ``psi`` or its KS statistic reaches ``ks_statistic`` with a p-value at most
``ks_pvalue`` (see ``DriftThresholds``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import ks_2samp

from anomaly_api.monitoring.reference import DriftReference, as_matrix, bin_counts

PSI_FLOOR: Final = 1e-4
KS_METHOD: Final = "asymp"


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted (the ``drift_*`` settings)."""

    psi: float = 0.25
    ks_statistic: float = 0.2
    ks_pvalue: float = 0.01
    min_rows: int = 100

    def __post_init__(self) -> None:
        if not (math.isfinite(self.psi) and self.psi > 0):
            raise ValueError(f"psi threshold must be a positive number, got {self.psi}")
        if not 0.0 < self.ks_statistic <= 1.0:
            raise ValueError(f"ks_statistic threshold must be in (0, 1], got {self.ks_statistic}")
        if not 0.0 < self.ks_pvalue < 1.0:
            raise ValueError(f"ks_pvalue threshold must be in (0, 1), got {self.ks_pvalue}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, got {self.min_rows}")


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift statistics over the current window."""

    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    drifted: bool


def population_stability_index(
    window_shares: NDArray[np.float64], reference_shares: NDArray[np.float64]
) -> NDArray[np.float64]:
    """PSI of each row of two (n_features, n_bins) share matrices (floored at 1e-4)."""
    w = np.maximum(window_shares, PSI_FLOOR)
    r = np.maximum(reference_shares, PSI_FLOOR)
    psi: NDArray[np.float64] = np.sum((w - r) * np.log(w / r), axis=1)
    return psi


class DriftTracker:
    """The last ``window_rows`` inputs, and their drift from a ``DriftReference``.

    ``update`` is cheap enough for every request: small batches are copied into a
    pending list (under a lock) and written into a preallocated ring buffer once
    ``flush_rows`` rows are pending, or when the statistics are read; larger batches go
    straight into the ring. ``features``/``report`` compute the statistics on demand,
    so call them when Prometheus scrapes or ``/monitoring/drift`` is read.
    """

    def __init__(
        self,
        reference: DriftReference,
        *,
        window_rows: int = 1000,
        thresholds: DriftThresholds | None = None,
        flush_rows: int = 64,
    ) -> None:
        if window_rows < 2:
            raise ValueError(f"window_rows must be at least 2, got {window_rows}")
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, got {flush_rows}")
        self.reference = reference
        self.window_rows = window_rows
        self.flush_rows = flush_rows
        self.thresholds = thresholds or DriftThresholds()
        self._buffer = np.empty((window_rows, reference.n_features), dtype=np.float64)
        self._next = 0
        self._held = 0
        self._seen = 0
        self._pending: list[NDArray[np.float64]] = []
        self._pending_rows = 0
        self._lock = threading.Lock()

    @property
    def rows_held(self) -> int:
        """Rows in the window now (at most ``window_rows``)."""
        with self._lock:
            return min(self.window_rows, self._held + self._pending_rows)

    @property
    def rows_seen(self) -> int:
        """Rows passed to ``update`` since the tracker was built."""
        return self._seen

    def update(self, X: ArrayLike, *, check_finite: bool = True) -> None:
        """Append a batch of rows (n_rows, n_features); the oldest rows fall out.

        ``check_finite=False`` skips the finiteness check (about half of the cost of a
        one-row update) for callers whose rows were validated already.
        """
        data = as_matrix(X, self.reference.n_features, "rows", check_finite=check_finite)
        n = data.shape[0]
        if n == 0:
            return
        with self._lock:
            self._seen += n
            if n >= self.flush_rows:
                self._flush()
                self._write(data)
                return
            self._pending.append(data.copy())
            self._pending_rows += n
            if self._pending_rows >= self.flush_rows:
                self._flush()

    def _flush(self) -> None:
        """Write the pending rows into the ring (lock held)."""
        if self._pending:
            batch = self._pending[0] if len(self._pending) == 1 else np.vstack(self._pending)
            self._pending.clear()
            self._pending_rows = 0
            self._write(batch)

    def _write(self, data: NDArray[np.float64]) -> None:
        """Copy ``data`` into the ring buffer (lock held)."""
        n, size = data.shape[0], self.window_rows
        if n >= size:
            self._buffer[:] = data[-size:]
            self._next, self._held = 0, size
            return
        end = self._next + n
        if end <= size:
            self._buffer[self._next : end] = data
        else:
            first = size - self._next
            self._buffer[self._next :] = data[:first]
            self._buffer[: n - first] = data[first:]
        self._next = end % size
        self._held = min(size, self._held + n)

    def window(self) -> NDArray[np.float64]:
        """A copy of the rows held, oldest first."""
        with self._lock:
            self._flush()
            if self._held < self.window_rows:
                return self._buffer[: self._held].copy()
            return np.roll(self._buffer, -self._next, axis=0)

    def features(self) -> list[FeatureDrift]:
        """Each feature's statistics; empty while the window holds no row."""
        rows = self.window()
        if rows.shape[0] == 0:
            return []
        ref = self.reference
        counts = np.stack([bin_counts(rows[:, j], ref.bin_edges[j]) for j in range(ref.n_features)])
        psi = population_stability_index(counts / rows.shape[0], ref.bin_shares)
        ks = ks_2samp(rows, ref.sketch, axis=0, method=KS_METHOD)
        statistic = np.atleast_1d(np.asarray(ks.statistic, dtype=np.float64))
        pvalue = np.atleast_1d(np.asarray(ks.pvalue, dtype=np.float64))
        t = self.thresholds
        enough = rows.shape[0] >= t.min_rows
        drifted = enough & (
            (psi >= t.psi) | ((statistic >= t.ks_statistic) & (pvalue <= t.ks_pvalue))
        )
        return [
            FeatureDrift(
                feature=name,
                psi=float(psi[j]),
                ks_statistic=float(statistic[j]),
                ks_pvalue=float(pvalue[j]),
                drifted=bool(drifted[j]),
            )
            for j, name in enumerate(ref.feature_names)
        ]

    def report(self) -> dict[str, Any]:
        """The ``GET /monitoring/drift`` body (JSON-serialisable; see the docs)."""
        stats = {f.feature: f for f in self.features()}
        held, t = self.rows_held, self.thresholds
        features = []
        for name in self.reference.feature_names:
            found = stats.get(name)
            features.append(
                {
                    "feature": name,
                    "psi": None if found is None else found.psi,
                    "ks_statistic": None if found is None else found.ks_statistic,
                    "ks_pvalue": None if found is None else found.ks_pvalue,
                    "drifted": False if found is None else found.drifted,
                    "window_rows": self.window_rows,
                    "rows_held": held,
                }
            )
        return {
            "window_rows": self.window_rows,
            "rows_held": held,
            "rows_seen": self.rows_seen,
            "enough_rows": held >= t.min_rows,
            "drifted": any(f["drifted"] for f in features),
            "thresholds": {
                "psi": t.psi,
                "ks_statistic": t.ks_statistic,
                "ks_pvalue": t.ks_pvalue,
                "min_rows": t.min_rows,
            },
            "reference": {
                "training_rows": self.reference.training_rows,
                "sketch_rows": int(self.reference.sketch.shape[0]),
                "bins": int(self.reference.bin_shares.shape[1]),
                "ks_method": f"scipy.stats.ks_2samp(method={KS_METHOD!r})",
            },
            "features": features,
        }
