"""The per-model metrics: a ``model`` label whose values are bounded.

Every model name would be a label value, and a fleet of thousands would be thousands of
series per metric; the first ``max_models`` names seen keep their own value, the rest
share ``other`` (``BoundedLabel``).
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge

from anomaly_api.service.metrics import ServiceMetrics

__all__ = ["OTHER", "BoundedLabel", "FleetMetrics"]

OTHER = "other"


class BoundedLabel:
    """Maps names to at most ``limit`` label values, then to ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(name)
                return name
        return OTHER


class FleetMetrics:
    """Rows scored, loads and evictions per model, and what is resident now."""

    def __init__(self, metrics: ServiceMetrics, *, max_models: int) -> None:
        """On ``metrics``' registry; the rows are tallied and added with its own tallies."""
        registry = metrics.registry
        metrics.tally_with(self.flush)
        self.label = BoundedLabel(max_models)
        self._rows_by_label: dict[str, Counter] = {}  # at most max_models + 1: the bound holds
        self._pending_rows: dict[str, int] = {}  # by label: bounded the same way
        self.rows = Counter(
            "anomaly_model_rows",
            "Rows (readings) scored, by model name (`other` past metrics_max_models names).",
            ["model"],
            registry=registry,
        )
        self.loads = Counter(
            "anomaly_model_loads",
            "Named-model loads by model and result (ok, failed).",
            ["model", "result"],
            registry=registry,
        )
        self.evictions = Counter(
            "anomaly_model_evictions",
            "Named models unloaded to stay inside model_memory_mb, by model.",
            ["model"],
            registry=registry,
        )
        self.resident = Gauge(
            "anomaly_models_loaded",
            "Named models loaded now (besides `default`).",
            registry=registry,
        )
        self.resident_bytes = Gauge(
            "anomaly_models_loaded_bytes",
            "Counted bytes of the named models loaded now (what model_memory_mb bounds).",
            registry=registry,
        )

    def observe_rows(self, name: str, rows: int) -> None:
        """Count ``rows`` scored by model ``name``: tallied by label, added to the counter by
        ``flush`` (this runs for every prediction, on the event loop)."""
        label = self.label(name)
        pending = self._pending_rows
        pending[label] = pending.get(label, 0) + rows

    def flush(self) -> None:
        """Add the rows tallied since the last call to the counter (``ServiceMetrics``
        calls it when its registry is collected: ``ServiceMetrics.tally_with``)."""
        pending, self._pending_rows = self._pending_rows, {}
        for label, rows in pending.items():
            child = self._rows_by_label.get(label)
            if child is None:
                child = self._rows_by_label.setdefault(label, self.rows.labels(label))
            child.inc(rows)

    def observe_load(self, name: str, ok: bool) -> None:
        """Count one load attempt of ``name``."""
        self.loads.labels(self.label(name), "ok" if ok else "failed").inc()

    def observe_eviction(self, name: str) -> None:
        """Count one eviction of ``name``."""
        self.evictions.labels(self.label(name)).inc()

    def set_resident(self, models: int, size_bytes: int) -> None:
        """What is loaded now."""
        self.resident.set(models)
        self.resident_bytes.set(size_bytes)
