"""Watching a served model: input drift against the training data, and alarm policies.

Pure NumPy/SciPy, free of HTTP, Redis and Prometheus: the service layer feeds these
objects and exports what they compute (metric names in ``service/metric_names.py``).
"""

from __future__ import annotations

from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState, AlarmTracker
from anomaly_api.monitoring.drift import DriftThresholds, DriftTracker, FeatureDrift
from anomaly_api.monitoring.reference import (
    DriftReference,
    build_drift_reference,
    load_drift_reference,
    save_drift_reference,
)

__all__ = [
    "AlarmPolicy",
    "AlarmState",
    "AlarmTracker",
    "DriftReference",
    "DriftThresholds",
    "DriftTracker",
    "FeatureDrift",
    "build_drift_reference",
    "load_drift_reference",
    "save_drift_reference",
]
