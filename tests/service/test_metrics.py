"""ServiceMetrics: own registry per instance, cache counters read at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.service.cache.base import BreakerState
from anomaly_api.service.fleet_metrics import FleetMetrics
from anomaly_api.service.metrics import RollingRate, ServiceMetrics


@dataclass
class _Counters:
    """A real CacheCounters implementation (the protocol is four ints and a state)."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    skipped: int = 0
    breaker_state: BreakerState = "closed"


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_two_instances_do_not_clash() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.observe_request("GET", "/health", 200, 0.01)
    assert (
        _samples(first)[
            (
                "anomaly_http_requests_total",
                (("method", "GET"), ("route", "/health"), ("status", "200")),
            )
        ]
        == 1
    )
    assert not any(name == "anomaly_http_requests_total" for name, _ in _samples(second))


def test_predictions_by_outcome_rows_and_rate() -> None:
    metrics = ServiceMetrics(anomaly_window=10)
    metrics.observe_predictions(rows=4, anomalies=1)
    metrics.observe_inference(0.002)
    metrics.observe_predictions(rows=2, anomalies=0)
    samples = _samples(metrics)
    assert samples[("anomaly_predictions_total", (("outcome", "anomaly"),))] == 1
    assert samples[("anomaly_predictions_total", (("outcome", "normal"),))] == 5
    assert samples[("anomaly_batch_rows_count", ())] == 2
    assert samples[("anomaly_batch_rows_sum", ())] == 6
    assert samples[("anomaly_model_inference_seconds_count", ())] == 1
    assert samples[("anomaly_rolling_anomaly_rate", ())] == 1 / 6


def test_model_info_names_only_the_current_version() -> None:
    metrics = ServiceMetrics()
    metrics.set_model_version("v1")
    metrics.set_model_version("v2")
    info = {
        labels: v for (name, labels), v in _samples(metrics).items() if name == "anomaly_model_info"
    }
    assert info == {(("version", "v2"),): 1.0}


def test_cache_counters_are_read_when_scraped() -> None:
    metrics = ServiceMetrics()
    counters = _Counters()
    metrics.track_cache(counters)
    counters.hits, counters.misses, counters.errors = 7, 3, 2
    counters.breaker_state = "open"
    samples = _samples(metrics)
    assert samples[("anomaly_cache_operations_total", (("result", "hit"),))] == 7
    assert samples[("anomaly_cache_operations_total", (("result", "miss"),))] == 3
    assert samples[("anomaly_cache_operations_total", (("result", "error"),))] == 2
    assert samples[("anomaly_cache_breaker_state", (("state", "open"),))] == 1
    assert samples[("anomaly_cache_breaker_state", (("state", "closed"),))] == 0


def test_the_stream_store_breaker_is_read_when_scraped() -> None:
    metrics = ServiceMetrics()
    name = "anomaly_streams_breaker_state"
    assert not [key for key in _samples(metrics) if key[0] == name]  # nothing tracked
    state: list[BreakerState] = ["closed"]
    metrics.track_streams_breaker(lambda: state[0])
    state[0] = "half_open"
    samples = _samples(metrics)
    assert samples[(name, (("state", "half_open"),))] == 1
    assert samples[(name, (("state", "closed"),))] == 0
    metrics.stop_tracking()
    assert not [key for key in _samples(metrics) if key[0] == name]


def test_rolling_rate_forgets_old_batches() -> None:
    rate = RollingRate(window=4)
    assert rate.add(4, 4) == 1.0
    assert rate.add(4, 0) == 0.0  # the first batch fell out of the window
    assert rate.add(2, 1) == 1 / 6


def test_tallied_requests_and_predictions_read_as_metrics_updated_one_by_one() -> None:
    """The tallies added at scrape time give every sample of the metrics updated per call:
    bucket edges, values past the last bound, NaN (in no bucket), several scrapes."""
    reference = ServiceMetrics(anomaly_window=10)
    tallied = ServiceMetrics(anomaly_window=10)
    rate = RollingRate(window=10)
    latencies = [0.001, 0.0010001, 0.25, 5.0, 7.5, 0.0, float("nan"), 0.004]
    for round_ in range(2):
        for i, seconds in enumerate(latencies):
            status = 200 if i % 3 else 503
            labels = ("POST", "/predict", str(status))
            reference.requests.labels(*labels).inc()
            reference.request_latency.labels(*labels).observe(seconds)
            tallied.observe_request("POST", "/predict", status, seconds)
            rows, anomalies = 1 + 500 * i, i % 2
            reference.batch_rows.observe(rows)
            reference.predictions.labels("anomaly").inc(anomalies)
            reference.predictions.labels("normal").inc(rows - anomalies)
            reference.inference_seconds.observe(seconds)
            reference.anomaly_rate.set(rate.add(rows, anomalies))
            tallied.observe_predictions(rows, anomalies)
            tallied.observe_inference(seconds)
        want = {k: v for k, v in _samples(reference).items() if not k[0].endswith("_created")}
        got = {k: v for k, v in _samples(tallied).items() if not k[0].endswith("_created")}
        assert got.keys() == want.keys(), round_
        for key, value in want.items():
            assert got[key] == value or (value != value and got[key] != got[key]), key


def test_requests_in_progress_and_rows_by_model_are_read_when_scraped() -> None:
    metrics = ServiceMetrics()
    fleet = FleetMetrics(metrics, max_models=1)
    metrics.request_started()
    metrics.request_started()
    metrics.request_finished()
    fleet.observe_rows("pumps", 3)
    fleet.observe_rows("fans", 2)  # past the bound: "other"
    fleet.observe_rows("pumps", 1)
    samples = _samples(metrics)
    assert samples[("anomaly_http_requests_in_progress", ())] == 1
    assert samples[("anomaly_model_rows_total", (("model", "pumps"),))] == 4
    assert samples[("anomaly_model_rows_total", (("model", "other"),))] == 2
    metrics.request_finished()
    fleet.observe_rows("pumps", 5)
    samples = _samples(metrics)  # the second scrape adds only what came since the first
    assert samples[("anomaly_http_requests_in_progress", ())] == 0
    assert samples[("anomaly_model_rows_total", (("model", "pumps"),))] == 9
