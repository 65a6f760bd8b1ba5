"""The served model's monitoring: input drift, alarms, expected anomaly rate.

``ModelMonitor`` is one DataPlane hook (``monitor.observe``) and one Prometheus collector.
Per request it only appends the scored rows to the drift window (a batch copy into a
ring buffer, ``DriftTracker.update``) and feeds the anomaly flags to the service-wide
alarm state (``AlarmPolicy``); the drift statistics (PSI, KS) are computed when Prometheus scrapes
or ``GET /monitoring/drift`` is read, never per request. ``attach(predictor)`` runs at
start-up and after every successful reload: the window starts afresh for the new model
(its reference may differ), the alarm state is kept (it is about the service).

Stream alarms are evaluated by ``StreamPlane``; this collector only counts them per
stream class (``StreamClasses``: bounded, the rest is ``other``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from anomaly_api.artifacts import FittedModelInfo, fitted_model_of
from anomaly_api.config import Settings
from anomaly_api.monitoring import AlarmPolicy, AlarmState, DriftThresholds, DriftTracker
from anomaly_api.service import metric_names as names
from anomaly_api.service.dataplane import ScoredBatch
from anomaly_api.service.predictor import Predictor
from anomaly_api.training.tuning import expected_rates

__all__ = ["ModelMonitor", "StreamClasses", "drift_thresholds", "service_alarm_policy"]

_log = logging.getLogger(__name__)


def drift_thresholds(settings: Settings) -> DriftThresholds:
    """The ``drift_*`` settings as ``DriftThresholds``."""
    return DriftThresholds(
        psi=settings.drift_psi_threshold,
        ks_statistic=settings.drift_ks_statistic_threshold,
        ks_pvalue=settings.drift_ks_pvalue_threshold,
        min_rows=settings.drift_min_rows,
    )


def service_alarm_policy(settings: Settings) -> AlarmPolicy:
    """The ``alarm_*`` settings as an ``AlarmPolicy`` (readings: one per scored row)."""
    return AlarmPolicy(
        k=settings.alarm_min_anomalies,
        window=settings.alarm_window,
        cooldown=settings.alarm_cooldown,
        unit=settings.alarm_unit,
    )


class StreamClasses:
    """Stream alarm counts by class: the id up to ``separator``, at most ``max_classes``.

    The first ``max_classes`` classes to raise an alarm get their own label, the others
    share ``other``: the label's cardinality is bounded whatever ids clients send.
    """

    def __init__(self, separator: str = ":", max_classes: int = 20) -> None:
        if not separator or max_classes < 1:
            raise ValueError("separator must not be empty, max_classes must be >= 1")
        self.separator = separator
        self.max_classes = max_classes
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def class_of(self, stream_id: str) -> str:
        """The class ``stream_id`` belongs to (before the cap)."""
        return stream_id.split(self.separator, 1)[0]

    def count(self, stream_id: str, alarms: int) -> None:
        """Add ``alarms`` to the stream's class (or to ``other``)."""
        name = self.class_of(stream_id)
        with self._lock:
            if name not in self._counts and len(self._counts) >= self.max_classes:
                name = names.OTHER_STREAM_CLASS
            self._counts[name] = self._counts.get(name, 0) + alarms

    def counts(self) -> dict[str, int]:
        """Alarms per class label so far; ``other`` is always there (0 from the start)."""
        with self._lock:
            return {names.OTHER_STREAM_CLASS: 0} | self._counts


class ModelMonitor:
    """Drift window, service alarms and expected rate of the model being served."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.drift_enabled = settings.drift_enabled
        self.version: str | None = None
        self.tracker: DriftTracker | None = None
        self._fitted: FittedModelInfo | None = None  # the fit the tracker's window belongs to
        self.expected_anomaly_rate: float | None = None
        self.unavailable_reason = "no model is loaded"
        self._thresholds = drift_thresholds(settings)
        policy = service_alarm_policy(settings)
        # The service stream has no timestamps: a policy in seconds counts readings by
        # their arrival time.
        self._alarm_seconds = policy.unit == "seconds"
        self.alarm_policy = policy
        self._alarm_state = AlarmState()  # the service stream (SERVICE_STREAM)
        self._unevaluated = 0
        """Readings of batches without anomalies not yet added to the state's ``seen``."""
        self.service_alarms = 0
        self.stream_classes = StreamClasses(
            settings.stream_class_separator, settings.stream_max_classes
        )
        self._lock = threading.Lock()

    def attach(self, predictor: Predictor | None) -> None:
        """Watch ``predictor``'s model from now on (start-up and after each reload); a
        threshold revision of the model already watched keeps its drift window."""
        if predictor is None:
            return
        refs = predictor.references
        fitted = fitted_model_of(predictor.manifest)
        tracker = None
        reason = ""
        if not self.drift_enabled:
            reason = "drift tracking is off (ANOMALY_DRIFT_ENABLED=false)"
        elif refs.drift is None:
            reason = (
                f"model {predictor.version!r} was saved without a drift reference; "
                "retrain it with `anomaly-api train` to track drift"
            )
        elif refs.drift.feature_names != predictor.feature_names:
            reason = f"model {predictor.version!r}: the drift reference's features differ"
        elif self.tracker is not None and fitted == self._fitted:
            # A threshold revision of the model watched: same fit, same reference, same
            # inputs; their drift window goes on rather than starting empty.
            tracker = self.tracker
        else:
            tracker = DriftTracker(
                refs.drift,
                window_rows=self.settings.drift_window_rows,
                thresholds=self._thresholds,
            )
        rate = None
        if refs.scores is not None:
            tunable = predictor.tunable
            rate = expected_rates(refs.scores, tunable.thresholds, tunable.decide())[
                "expected_anomaly_rate"
            ]
        with self._lock:
            self.version = predictor.version
            self._fitted = fitted
            self.tracker = tracker
            self.unavailable_reason = reason
            self.expected_anomaly_rate = rate

    def observe(self, scored: ScoredBatch) -> None:
        """The DataPlane hook: append the rows to the drift window, feed the alarms.

        A batch without anomalies only advances the alarm state's reading count (what
        ``AlarmPolicy.evaluate`` would do, without its NumPy work): most batches. The count
        is kept as a number and added to the state before the next evaluation, its one
        reader, rather than building a new state for every batch.
        """
        tracker = self.tracker
        if tracker is not None and scored.model_version == self.version:
            tracker.update(scored.X, check_finite=False)  # rows validated by the predictor
        if scored.n_anomalies == 0:
            if not self._alarm_seconds:
                with self._lock:
                    self._unevaluated += scored.rows
            return
        flags = scored.anomaly_flags()
        times = np.full(scored.rows, time.time()) if self._alarm_seconds else None
        with self._lock:
            state = self._alarm_state
            if self._unevaluated:
                state = replace(state, seen=state.seen + self._unevaluated)
                self._unevaluated = 0
            alarms, self._alarm_state = self.alarm_policy.evaluate(state, flags, times)
            self.service_alarms += int(alarms.sum())

    def drift_report(self) -> dict[str, Any]:
        """The ``GET /monitoring/drift`` body."""
        tracker, version = self.tracker, self.version
        if tracker is None:
            return {
                "available": False,
                "model_version": version,
                "reason": self.unavailable_reason,
            }
        return {"available": True, "model_version": version, **tracker.report()}

    # Prometheus collector -------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families(with_values=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_values=True)

    def _families(self, *, with_values: bool) -> list[Metric]:
        label = [names.FEATURE_LABEL]
        psi = GaugeMetricFamily(
            names.FEATURE_DRIFT_PSI,
            "Population stability index of each feature's recent window vs training.",
            labels=label,
        )
        ks = GaugeMetricFamily(
            names.FEATURE_DRIFT_KS_STATISTIC,
            "Two-sample Kolmogorov-Smirnov statistic of each feature's window vs training.",
            labels=label,
        )
        pvalue = GaugeMetricFamily(
            names.FEATURE_DRIFT_KS_PVALUE,
            "p-value of that KS test (asymptotic; too small on autocorrelated inputs).",
            labels=label,
        )
        drifted = GaugeMetricFamily(
            names.FEATURE_DRIFTED, "1 when the feature counts as drifted.", labels=label
        )
        window = GaugeMetricFamily(
            names.DRIFT_WINDOW_ROWS, "Rows the drift window of this replica holds."
        )
        expected = GaugeMetricFamily(
            names.MODEL_EXPECTED_ANOMALY_RATE,
            "Share of rows the served model flagged on its own training/validation rows.",
        )
        alarms = CounterMetricFamily(
            names.counter_base(names.ALARMS_TOTAL),
            "Alarms raised by the alarm policy, by stream class.",
            labels=[names.STREAM_CLASS_LABEL],
        )
        stream_alarms = CounterMetricFamily(
            names.counter_base(names.STREAM_ALARMS_TOTAL),
            "Alarms in stateful stream answers, by stream class (id prefix; capped, rest other).",
            labels=[names.STREAM_CLASS_LABEL],
        )
        families: list[Metric] = [psi, ks, pvalue, drifted, window, expected, alarms]
        families.append(stream_alarms)
        if not with_values:
            return families
        alarms.add_metric([names.SERVICE_STREAM_CLASS], float(self.service_alarms))
        for stream_class, count in sorted(self.stream_classes.counts().items()):
            stream_alarms.add_metric([stream_class], float(count))
        if self.expected_anomaly_rate is not None:
            expected.add_metric([], self.expected_anomaly_rate)
        tracker = self.tracker
        if tracker is not None:
            try:
                stats = tracker.features()
            except Exception:  # a scrape must never fail for the drift statistics
                _log.exception("drift statistics failed")
                stats = []
            window.add_metric([], float(tracker.rows_held))
            for f in stats:
                psi.add_metric([f.feature], f.psi)
                ks.add_metric([f.feature], f.ks_statistic)
                pvalue.add_metric([f.feature], f.ks_pvalue)
                drifted.add_metric([f.feature], 1.0 if f.drifted else 0.0)
        return families
