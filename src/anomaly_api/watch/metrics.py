"""The watcher's own metrics: its results as series (``anomaly_score`` ...) and its counters.

Result series carry the input's labels (the Prometheus ``group_by`` labels, or the MQTT
topic) plus ``watch_job`` and ``stream``. Their number is bounded by ``max_series`` streams:
a stream beyond it is refused (counted in ``anomaly_watch_series_refused_total``) while the
streams already exposed keep updating, so a label explosion upstream cannot exhaust the
watcher or the Prometheus that scrapes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from anomaly_api.watch.scoring import Outcome, ScoredReadings

__all__ = ["ResultSeries", "WatchMetrics"]


@dataclass(slots=True)
class _Latest:
    labels: dict[str, str]
    score: float
    is_anomaly: float
    severity: float
    channels: tuple[str, ...]
    lower: list[float]
    upper: list[float]
    contribution: dict[str, float]


class ResultSeries(Collector):
    """The latest answer of each stream, exposed at scrape time, at most ``max_series``."""

    def __init__(self, max_series: int, refused: Counter) -> None:
        self.max_series = max_series
        self.refused = refused
        self._latest: dict[tuple[str, str], _Latest] = {}

    def observe(self, scored: ScoredReadings) -> None:
        """Keep the batch's last answer as its stream's current values."""
        key = (scored.job, scored.readings.stream_id)
        if key not in self._latest and len(self._latest) >= self.max_series:
            self.refused.labels(scored.job).inc()
            return
        answer = scored.answers[-1]
        labels = {
            **scored.readings.labels,
            "watch_job": scored.job,
            "stream": scored.readings.stream_id,
        }
        self._latest[key] = _Latest(
            labels=labels,
            score=answer.anomaly_score,
            is_anomaly=float(answer.is_anomaly),
            severity=answer.severity,
            channels=scored.channels,
            lower=scored.expected_lower.tolist(),
            upper=scored.expected_upper.tolist(),
            contribution={c.feature: c.share for c in answer.contributions},
        )

    def collect(self) -> Iterator[Metric]:
        families = {
            "score": GaugeMetricFamily(
                "anomaly_score", "Latest anomaly score of the stream (positive = anomaly).", None
            ),
            "is_anomaly": GaugeMetricFamily(
                "anomaly_is_anomaly", "1 when the stream's latest reading is an anomaly.", None
            ),
            "severity": GaugeMetricFamily(
                "anomaly_severity", "Severity of the stream's latest reading, in [0, 1).", None
            ),
            "lower": GaugeMetricFamily(
                "anomaly_expected_lower", "Lower end of the channel's expected range.", None
            ),
            "upper": GaugeMetricFamily(
                "anomaly_expected_upper", "Upper end of the channel's expected range.", None
            ),
            "contribution": GaugeMetricFamily(
                "anomaly_contribution", "The channel's share of the latest reading's score.", None
            ),
        }
        for latest in list(self._latest.values()):
            names, values = list(latest.labels), list(latest.labels.values())
            families["score"].add_sample("anomaly_score", dict(latest.labels), latest.score)
            families["is_anomaly"].add_sample(
                "anomaly_is_anomaly", dict(latest.labels), latest.is_anomaly
            )
            families["severity"].add_sample(
                "anomaly_severity", dict(latest.labels), latest.severity
            )
            for c, channel in enumerate(latest.channels):
                labels = dict(zip([*names, "channel"], [*values, channel], strict=True))
                families["lower"].add_sample("anomaly_expected_lower", labels, latest.lower[c])
                families["upper"].add_sample("anomaly_expected_upper", labels, latest.upper[c])
                share = latest.contribution.get(channel)
                if share is not None:  # a point-wise model's stream answers carry none
                    families["contribution"].add_sample("anomaly_contribution", labels, share)
        yield from families.values()


class WatchMetrics:
    """Everything the watcher exposes, on its own registry (one per watcher process)."""

    def __init__(self, max_series: int) -> None:
        self.registry = CollectorRegistry()
        self.readings = Counter(
            "anomaly_watch_readings",
            "Readings by outcome: scored, late (or duplicate), invalid (a missing channel), "
            "refused (stream limit), gap (a missing sample in the source).",
            ["watch_job", "outcome"],
            registry=self.registry,
        )
        self.source_errors = Counter(
            "anomaly_watch_source_errors",
            "Source reads that failed (unreachable, an error answer); retried next tick.",
            ["watch_job"],
            registry=self.registry,
        )
        self.series_refused = Counter(
            "anomaly_watch_series_refused",
            "Result updates refused because max_series streams are already exposed.",
            ["watch_job"],
            registry=self.registry,
        )
        self.sink_failures = Counter(
            "anomaly_watch_sink_failures",
            "Results a sink gave up on (webhook dead letters, MQTT publishes lost).",
            ["watch_job", "sink"],
            registry=self.registry,
        )
        self.reconnects = Counter(
            "anomaly_watch_mqtt_reconnects",
            "MQTT connections lost and tried again.",
            ["watch_job"],
            registry=self.registry,
        )
        self.fits = Counter(
            "anomaly_watch_fits",
            "Scheduled fits by outcome: promoted (now production), candidate (published, "
            "not promoted), failed, skipped (the previous fit still training, or no data).",
            ["watch_job", "outcome"],
            registry=self.registry,
        )
        self.results = ResultSeries(max_series, self.series_refused)
        self.registry.register(self.results)

    def count(self, job: str, outcome: Outcome, gaps: int = 0) -> None:
        """Add one scoring call's counts."""
        for name, n in (
            ("scored", outcome.scored),
            ("late", outcome.late),
            ("invalid", outcome.invalid),
            ("refused", outcome.refused),
            ("gap", gaps),
        ):
            if n:
                self.readings.labels(job, name).inc(n)


class MetricsSink:
    """The ``/metrics`` sink of a job: its live results become the result series."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics

    async def write(self, scored: ScoredReadings, *, live: bool) -> None:
        if live and scored.answers:
            self.metrics.results.observe(scored)

    async def close(self) -> None:
        return None
