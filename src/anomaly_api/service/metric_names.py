"""Every Prometheus metric name and label the service exports, in one place.

The dashboard (``deploy/monitoring/grafana/``) and the alert rules
(``deploy/monitoring/rules/``) use these names; ``tests/monitoring`` checks that they
use nothing else and that a real server exports them all. Names are given as
Prometheus exposes them (counters end in ``_total``, histograms add ``_bucket``,
``_sum`` and ``_count``); ``prometheus_client`` takes a counter's name without
``_total``, see ``counter_base``.
"""

from __future__ import annotations

from typing import Final

# What service/metrics.py exports today.
HTTP_REQUESTS_TOTAL: Final = "anomaly_http_requests_total"  # method, route, status
HTTP_REQUEST_DURATION_SECONDS: Final = "anomaly_http_request_duration_seconds"  # histogram
HTTP_REQUESTS_IN_PROGRESS: Final = "anomaly_http_requests_in_progress"
PREDICTIONS_TOTAL: Final = "anomaly_predictions_total"  # outcome = anomaly | normal
BATCH_ROWS: Final = "anomaly_batch_rows"  # histogram
MODEL_INFERENCE_SECONDS: Final = "anomaly_model_inference_seconds"  # histogram
ROLLING_ANOMALY_RATE: Final = "anomaly_rolling_anomaly_rate"
MODEL_INFO: Final = "anomaly_model_info"  # version
MODEL_RELOADS_TOTAL: Final = "anomaly_model_reloads_total"  # result = ok | failed
MODEL_REVISIONS_TOTAL: Final = "anomaly_model_revisions_total"
"""result = followed | failed | ignored | malformed (announcements of other replicas)."""
MODEL_ANNOUNCEMENTS_TOTAL: Final = "anomaly_model_announcements_total"  # result = sent | failed
CACHE_OPERATIONS_TOTAL: Final = "anomaly_cache_operations_total"  # result
CACHE_BREAKER_STATE: Final = "anomaly_cache_breaker_state"  # state = closed|open|half_open
STREAMS_BREAKER_STATE: Final = "anomaly_streams_breaker_state"
"""state = closed|open|half_open; the Redis stream store's breaker (absent without Redis)."""
TRAINING_JOBS_TOTAL: Final = "anomaly_training_jobs_total"
"""Training jobs of this replica that ended; status = succeeded | failed | cancelled."""
TRAINING_JOBS_ACTIVE: Final = "anomaly_training_jobs_active"  # state = running | queued

# Drift, alarms and the expected rate (gauges unless said otherwise).
FEATURE_DRIFT_PSI: Final = "anomaly_feature_drift_psi"  # feature
FEATURE_DRIFT_KS_STATISTIC: Final = "anomaly_feature_drift_ks_statistic"  # feature
FEATURE_DRIFT_KS_PVALUE: Final = "anomaly_feature_drift_ks_pvalue"  # feature
FEATURE_DRIFTED: Final = "anomaly_feature_drifted"  # feature; 1 when `drifted`
DRIFT_WINDOW_ROWS: Final = "anomaly_drift_window_rows"  # rows the drift window holds
ALARMS_TOTAL: Final = "anomaly_alarms_total"  # counter; stream_class
STREAM_ALARMS_TOTAL: Final = "anomaly_stream_alarms_total"  # counter; stream_class
"""Alarms in the answers of stateful streams (``alarm: true``), by stream class."""
MODEL_EXPECTED_ANOMALY_RATE: Final = "anomaly_model_expected_anomaly_rate"
"""Share of rows the served model flagged on its own training/validation rows."""

FEATURE_LABEL: Final = "feature"
STREAM_CLASS_LABEL: Final = "stream_class"
SERVICE_STREAM_CLASS: Final = "service"
"""``stream_class`` of the whole-service alarm (requests without a stream)."""
OTHER_STREAM_CLASS: Final = "other"
"""``stream_class`` of the stream classes beyond ``stream_max_classes``."""

DRIFT_METRICS: Final = (
    FEATURE_DRIFT_PSI,
    FEATURE_DRIFT_KS_STATISTIC,
    FEATURE_DRIFT_KS_PVALUE,
    FEATURE_DRIFTED,
    DRIFT_WINDOW_ROWS,
)
MONITORING_METRICS: Final = (
    *DRIFT_METRICS,
    ALARMS_TOTAL,
    STREAM_ALARMS_TOTAL,
    MODEL_EXPECTED_ANOMALY_RATE,
)
HISTOGRAMS: Final = (HTTP_REQUEST_DURATION_SECONDS, BATCH_ROWS, MODEL_INFERENCE_SECONDS)


def counter_base(name: str) -> str:
    """The name to give ``prometheus_client.Counter`` (without ``_total``)."""
    return name.removesuffix("_total")


def exposed_names(name: str) -> tuple[str, ...]:
    """The sample names Prometheus scrapes for ``name`` (a histogram's three series)."""
    if name in HISTOGRAMS:
        return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
    return (name,)
