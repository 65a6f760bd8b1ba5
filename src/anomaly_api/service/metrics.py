"""Every Prometheus metric of the service, defined once, on a registry owned by the app.

``ServiceMetrics`` holds its own ``CollectorRegistry`` instead of the process-global one,
so building the app twice (tests, reloads) never raises "Duplicated timeseries". The
cache keeps its own plain counters (``CacheCounters``); a collector reads them at scrape
time, so the cache never imports Prometheus.

What every request records (its count and latency, the requests in progress, the rows,
outcomes and model time of a prediction) is tallied in plain numbers (``Tally``) and
added to its Prometheus metric when the registry is collected: an update of a
prometheus_client metric is a chain of method calls and a lock, several of them per
request. So these methods, like the event loop that calls them, run on one thread. The
metrics, their samples and the text served are those of the metrics updated one
observation at a time.

Under several workers (``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is
imported) every metric is written to that directory and ``render`` sums the workers'
files, so whichever worker is scraped answers for all; the collectors' values are copied
there by a ``CollectorMirror`` (``metrics_multiprocess``), and the tallies added to the
files with them: before a scrape of their own worker, every few seconds otherwise.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from anomaly_api.service.cache.base import BreakerState, CacheCounters
from anomaly_api.service.jobs.records import FINISHED
from anomaly_api.service.metric_names import CACHE_BREAKER_STATE, STREAMS_BREAKER_STATE
from anomaly_api.service.metrics_multiprocess import CollectorMirror
from anomaly_api.service.streams.events import FEEDBACK_LABELS

if TYPE_CHECKING:
    from anomaly_api.service.jobs.runner import JobCounts

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "Tally", "multiprocess_mode"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_BREAKER_STATES = ("closed", "open", "half_open")


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes this process's metrics to shared files (decided
    when it was imported, from ``PROMETHEUS_MULTIPROC_DIR``)."""
    return prometheus_values.ValueClass is not prometheus_values.MutexValue


class RollingRate:
    """Share of anomalies among (about) the last ``window`` scored rows.

    Batches are kept whole, so the window may hold up to one batch more than ``window``.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._batches: deque[tuple[int, int]] = deque()
        self._rows = 0
        self._anomalies = 0
        self._lock = threading.Lock()

    def add(self, rows: int, anomalies: int) -> float:
        """Record one batch and return the current rate."""
        with self._lock:
            self._batches.append((rows, anomalies))
            self._rows += rows
            self._anomalies += anomalies
            while len(self._batches) > 1 and self._rows - self._batches[0][0] >= self.window:
                old_rows, old_anomalies = self._batches.popleft()
                self._rows -= old_rows
                self._anomalies -= old_anomalies
            return self._anomalies / self._rows if self._rows else 0.0


class Tally:
    """Observations of one histogram child and the increments of counter children, kept as
    plain numbers until ``add_to`` adds them to those metrics (and starts again from zero).

    ``observe`` places a value as ``Histogram.observe`` does: in the first bucket whose
    upper bound is at least the value (NaN in none).
    """

    __slots__ = ("bounds", "counts", "increments", "total")

    def __init__(self, histogram: Histogram, counters: int = 0) -> None:
        self.bounds = tuple(histogram._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.increments = [0.0] * counters

    def observe(self, value: float) -> None:
        """One observation of the histogram."""
        bounds = self.bounds  # the last is +Inf
        index = bisect_left(bounds, value)
        if value <= bounds[index]:  # false for NaN only
            self.counts[index] += 1
        self.total += value

    def add_to(self, histogram: Histogram, *counters: Counter) -> None:
        """Add what was tallied since the last call to ``histogram`` and ``counters``."""
        counts, increments = self.counts, self.increments
        if any(counts):
            for bucket, count in zip(histogram._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            histogram._sum.inc(self.total)
            self.counts, self.total = [0] * len(counts), 0.0
        if any(increments):
            for counter, amount in zip(counters, increments, strict=True):
                if amount:
                    counter.inc(amount)
            self.increments = [0.0] * len(increments)


class _Flush:
    """A collector without families of its own, registered first: collecting the registry
    (or copying it for the other workers) adds the tallies to their metrics first."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self.flush = flush

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        self.flush()
        return []


def _breaker_family(name: str, doc: str, current: BreakerState | None) -> GaugeMetricFamily:
    """1 for the ``current`` state of a circuit breaker, 0 for the others (none if None)."""
    family = GaugeMetricFamily(name, doc, labels=["state"])
    if current is not None:
        for state in _BREAKER_STATES:
            family.add_metric([state], 1.0 if state == current else 0.0)
    return family


class _CacheCollector:
    """Reads the cache's own counters when Prometheus scrapes."""

    def __init__(self) -> None:
        self.cache: CacheCounters | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(self.cache)

    @staticmethod
    def _families(cache: CacheCounters | None = None) -> list[Metric]:
        doc = "Prediction cache lookups by result (hit, miss) and failed cache calls (error)."
        ops = CounterMetricFamily("anomaly_cache_operations", doc, labels=["result"])
        if cache is not None:
            for result, value in (
                ("hit", cache.hits),
                ("miss", cache.misses),
                ("error", cache.errors),
                ("skipped", cache.skipped),
            ):
                ops.add_metric([result], float(value))
        state = _breaker_family(
            CACHE_BREAKER_STATE,
            "1 for the Redis circuit breaker's current state (closed = Redis in use).",
            None if cache is None else cache.breaker_state,
        )
        return [ops, state]


class _StreamsCollector:
    """Reads the Redis stream store's breaker state when Prometheus scrapes: with the
    prediction cache in the process, the one sign of a Redis outage in the metrics."""

    def __init__(self) -> None:
        self.state: Callable[[], BreakerState] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(None if self.state is None else self.state())

    @staticmethod
    def _families(current: BreakerState | None = None) -> list[Metric]:
        doc = "1 for the Redis stream store's circuit breaker state (open = streams in memory)."
        return [_breaker_family(STREAMS_BREAKER_STATE, doc, current)]


class _JobsCollector:
    """Reads the training job runner's own counts when Prometheus scrapes (labels bounded:
    the three final statuses, and running/queued)."""

    def __init__(self) -> None:
        self.counts: Callable[[], JobCounts] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(None if self.counts is None else self.counts())

    @staticmethod
    def _families(counts: JobCounts | None = None) -> list[Metric]:
        ended = CounterMetricFamily(
            "anomaly_training_jobs",
            "Training jobs of this replica that ended, by final status "
            "(succeeded, failed, cancelled).",
            labels=["status"],
        )
        active = GaugeMetricFamily(
            "anomaly_training_jobs_active",
            "Training jobs of this replica running or queued now, by state.",
            labels=["state"],
        )
        if counts is not None:
            for status in sorted(FINISHED):
                ended.add_metric([status], float(counts.ended.get(status, 0)))
            active.add_metric(["running"], float(counts.running))
            active.add_metric(["queued"], float(counts.queued))
        return [ended, active]


class ServiceMetrics:
    """The service's metrics and the registry ``/metrics`` serves them from."""

    def __init__(self, *, anomaly_window: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        flush = _Flush(self.flush)
        r.register(flush)  # before every metric: collected first
        self.requests = Counter(
            "anomaly_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "anomaly_http_request_duration_seconds",
            "HTTP request latency by method, route template and status code.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Under several workers a gauge says how the workers' values combine: summed,
        # the most recently set one, or one per worker (a ``pid`` label).
        self.in_progress = Gauge(
            "anomaly_http_requests_in_progress",
            "HTTP requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "anomaly_http_requests_shed",
            "HTTP requests answered 503 at once because max_in_flight were being served.",
            registry=r,
        )
        self.predictions = Counter(
            "anomaly_predictions",
            "Scored rows by outcome (anomaly or normal), cached or not.",
            ["outcome"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "anomaly_batch_rows", "Rows per prediction request.", buckets=_ROW_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "anomaly_model_inference_seconds",
            "Time of one vectorised model call (the rows of a request the cache did not have).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.anomaly_rate = Gauge(
            "anomaly_rolling_anomaly_rate",
            f"Share of anomalies among the last ~{anomaly_window} scored rows.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.model_info = Gauge(
            "anomaly_model_info",
            "1 for the model version being served.",
            ["version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self._served_version: str | None = None
        self.model_reloads = Counter(
            "anomaly_model_reloads",
            "Model reload attempts by result (ok, failed).",
            ["result"],
            registry=r,
        )
        self.revisions = Counter(
            "anomaly_model_revisions",
            "Versions announced by other replicas, by what this one did: followed, failed "
            "(could not load it; still serving its model), ignored (already served), "
            "malformed (not an announcement).",
            ["result"],
            registry=r,
        )
        self.announcements = Counter(
            "anomaly_model_announcements",
            "Admin swaps announced to the other replicas, by result (sent, failed).",
            ["result"],
            registry=r,
        )
        self.event_feedback = Counter(
            "anomaly_event_feedback",
            "Operator feedback on stream events received by this replica, by label "
            "(a label repeated on the same event is not counted again).",
            ["label"],
            registry=r,
        )
        self.event_precision = Gauge(
            "anomaly_event_precision",
            "Precision the feedback received by this replica implies: confirmed / "
            "(confirmed + false_alarm); NaN before any.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.event_precision.set(math.nan)
        self._feedback = {label: self.event_feedback.labels(label) for label in FEEDBACK_LABELS}
        self._feedback_counts = dict.fromkeys(FEEDBACK_LABELS, 0)
        self._feedback_lock = threading.Lock()
        for result in ("followed", "failed", "ignored", "malformed"):
            self.revisions.labels(result)
        for result in ("sent", "failed"):
            self.announcements.labels(result)
        # Label children looked up once: ``labels()`` takes a lock and builds a tuple on
        # every call, ~1 µs each, several times per request.
        self._anomalies = self.predictions.labels("anomaly")
        self._normals = self.predictions.labels("normal")
        self._request_tallies: dict[tuple[str, str, int], tuple[Tally, Counter, Histogram]] = {}
        self._rows_tally = Tally(self.batch_rows, counters=2)  # + anomalies, normal rows
        self._inference_tally = Tally(self.inference_seconds)
        self._rate_now: float | None = None
        self._flushes: list[Callable[[], None]] = []
        self._in_flight = 0
        """Requests being served (one process: the in-progress gauge is set from it)."""
        for result in ("ok", "failed"):
            self.model_reloads.labels(result)
        self._rate = RollingRate(anomaly_window)
        self._cache = _CacheCollector()
        self._streams = _StreamsCollector()
        self._jobs = _JobsCollector()
        self.multiprocess = multiprocess_mode()
        self.mirror = CollectorMirror() if self.multiprocess else None
        if self.mirror is not None:
            self.mirror.add(flush)
        self.register(self._cache)
        self.register(self._streams)
        self.register(self._jobs)

    def register(self, collector: Collector) -> None:
        """Serve ``collector``'s families too (under several workers: through the mirror)."""
        self.registry.register(collector)
        if self.mirror is not None:
            self.mirror.add(collector)

    def track_cache(self, cache: CacheCounters | None) -> None:
        """Export this cache's counters from now on (``None`` stops)."""
        self._cache.cache = cache

    def track_streams_breaker(self, state: Callable[[], BreakerState] | None) -> None:
        """Export the Redis stream store's breaker ``state`` from now on (``None`` stops)."""
        self._streams.state = state

    def stop_tracking(self) -> None:
        """Export neither the cache's counters nor the stream store's breaker any more."""
        self.track_cache(None)
        self.track_streams_breaker(None)

    def track_jobs(self, counts: Callable[[], JobCounts] | None) -> None:
        """Export these training job counts from now on (``None`` stops)."""
        self._jobs.counts = counts

    def request_started(self) -> None:
        """One more HTTP request being served. Under several workers the gauge follows at
        once (each worker's line in the shared files is live); in one process it is set
        from a plain count when collected."""
        if self.multiprocess:
            self.in_progress.inc()
        else:
            self._in_flight += 1

    def request_finished(self) -> None:
        """One HTTP request fewer being served."""
        if self.multiprocess:
            self.in_progress.dec()
        else:
            self._in_flight -= 1

    def tally_with(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` whenever the tallies are added to their metrics (``flush``): the
        other metrics of this registry tallied the same way (``FleetMetrics``)."""
        self._flushes.append(flush)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        key = (method, route, status)
        entry = self._request_tallies.get(key)
        if entry is None:  # bounded: route templates x methods x status codes
            labels = (method, route, str(status))
            counter, histogram = (
                self.requests.labels(*labels),
                self.request_latency.labels(*labels),
            )
            entry = self._request_tallies[key] = (Tally(histogram, counters=1), counter, histogram)
        tally = entry[0]
        tally.observe(seconds)
        tally.increments[0] += 1

    def observe_predictions(self, rows: int, anomalies: int) -> None:
        """Count the answers of one prediction request of ``rows`` rows, cached or not."""
        tally = self._rows_tally
        tally.observe(rows)
        tally.increments[0] += anomalies
        tally.increments[1] += rows - anomalies
        self._rate_now = self._rate.add(rows, anomalies)

    def observe_inference(self, seconds: float) -> None:
        """Time of one model call (the rows the cache did not have)."""
        self._inference_tally.observe(seconds)

    def flush(self) -> None:
        """Add the requests, predictions and model times tallied since the last call to
        their metrics (collecting the registry calls it first)."""
        for tally, counter, histogram in self._request_tallies.values():
            tally.add_to(histogram, counter)
        self._rows_tally.add_to(self.batch_rows, self._anomalies, self._normals)
        self._inference_tally.add_to(self.inference_seconds)
        if self._rate_now is not None:
            self.anomaly_rate.set(self._rate_now)
            self._rate_now = None
        if not self.multiprocess:
            self.in_progress.set(self._in_flight)
        for flush in self._flushes:
            flush()

    def set_model_version(self, version: str | None) -> None:
        """Point the model-info gauge at the version now served."""
        if not self.multiprocess:
            self.model_info.clear()
        elif self._served_version is not None:  # the shared file cannot drop a line: 0
            self.model_info.labels(self._served_version).set(0)
        self._served_version = version
        if version is not None:
            self.model_info.labels(version).set(1)

    def observe_reload(self, ok: bool) -> None:
        """Count one reload attempt."""
        self.model_reloads.labels("ok" if ok else "failed").inc()

    def observe_revision(self, result: str) -> None:
        """Count one message of the revision channel by what was done with it."""
        self.revisions.labels(result).inc()

    def observe_announcement(self, sent: bool) -> None:
        """Count one announcement of an admin swap."""
        self.announcements.labels("sent" if sent else "failed").inc()

    def observe_feedback(self, label: str) -> None:
        """Count one new feedback label and update the precision it implies."""
        self._feedback[label].inc()
        with self._feedback_lock:
            counts = self._feedback_counts
            counts[label] += 1
            judged = counts["confirmed"] + counts["false_alarm"]
            if judged:
                self.event_precision.set(counts["confirmed"] / judged)

    def render(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE_LATEST``); under several
        workers, every worker's metrics combined (this one's collectors copied first)."""
        return generate_latest(self.registry) if self.mirror is None else self.mirror.render()

    def start_sharing(self) -> None:
        """One of several workers: copy the collectors' values for the others from now on."""
        if self.mirror is not None:
            self.mirror.start()

    async def stop_sharing(self) -> None:
        """This worker is leaving: its last values copied, its per-worker gauges dropped."""
        if self.mirror is not None:
            await self.mirror.stop()
