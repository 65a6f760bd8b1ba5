"""The watcher: runs every job of a ``WatchConfig`` until stopped, or backfills a period.

A Prometheus job reads, on each ``infer_every`` tick, the step-aligned range after its
watermark up to now (the first time: ``lookback`` back), scores each stream's new
readings, hands the results to its sinks and moves each stream's watermark, then the
job's. A stream's watermark is noted right after its readings are scored, so a watcher
killed mid-tick starts again after the last reading it scored: every reading once.

An MQTT job scores readings as they arrive. Failures of a source are counted and retried
on the next tick (Prometheus) or after a back-off (MQTT); they never end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from redis.asyncio import Redis

from anomaly_api.config import Settings
from anomaly_api.watch.config import JobConfig, WatchConfig, WatchConfigError
from anomaly_api.watch.fitting import FitBuffer, FitOutcome, Fitter
from anomaly_api.watch.metrics import MetricsSink, WatchMetrics
from anomaly_api.watch.scoring import Readings, WatchScorer
from anomaly_api.watch.sinks import Sink
from anomaly_api.watch.sinks.mqtt import MqttSink
from anomaly_api.watch.sinks.webhook import WebhookSink
from anomaly_api.watch.sources import SourceError
from anomaly_api.watch.sources.mqtt import MqttSource
from anomaly_api.watch.sources.prometheus import PrometheusSource, aligned_range
from anomaly_api.watch.watermark import FileWatermarks, RedisWatermarks, Watermarks

__all__ = ["Job", "Watcher", "check_models"]

_log = logging.getLogger(__name__)

RANGE_END = ""
"""The watermark key of the job itself (stream ids are never empty)."""


def check_models(config: WatchConfig, scorer: WatchScorer) -> None:
    """Load every job's model; ``WatchConfigError`` naming each job whose model is missing
    or whose channels (``queries``) the model does not have."""
    problems = []
    for i, job in enumerate(config.jobs):
        try:
            predictor = scorer.load(job.model)
        except Exception as exc:  # any load failure is the file's problem to report
            problems.append(f"jobs[{i}].model: {exc}")
            continue
        queries = job.source.prometheus.queries if job.source.prometheus else None
        if queries is not None:
            unknown = sorted(set(queries) - set(predictor.feature_names))
            if unknown:
                problems.append(
                    f"jobs[{i}].source.prometheus.queries: model {job.model.name!r} has no "
                    f"channel {', '.join(unknown)} (it has {', '.join(predictor.feature_names)})"
                )
    if problems:
        raise WatchConfigError(problems)


class Job:
    """One job: its source, its model, its sinks and its watermarks."""

    def __init__(
        self,
        config: JobConfig,
        scorer: WatchScorer,
        metrics: WatchMetrics,
        watermarks: Watermarks,
        fitter: Fitter | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.scorer = scorer
        self.metrics = metrics
        self.watermarks = watermarks
        self.sinks: list[Sink] = []
        if config.sinks.metrics:
            self.sinks.append(MetricsSink(metrics))
        if config.sinks.mqtt is not None:
            dropped = metrics.sink_failures.labels(self.name, "mqtt")
            self.sinks.append(MqttSink(self.name, config.sinks.mqtt, dropped))
        if config.sinks.webhook is not None:
            dead = metrics.sink_failures.labels(self.name, "webhook")
            self.sinks.append(WebhookSink(self.name, config.sinks.webhook, dead))
        prometheus = config.source.prometheus
        self.prometheus = None if prometheus is None else PrometheusSource(self.name, prometheus)
        self.marks: dict[str, float] | None = None
        self.mqtt_source: MqttSource | None = None
        """The MQTT source once the job runs (its ``connected`` event says when it is)."""
        self.fitter = fitter
        self.explain_all = config.sinks.mqtt is not None and config.sinks.mqtt.answers
        """Every answer's contributions only when answers are published (MQTT); else
        only those the events and the latest values read."""
        self.fit_buffer: FitBuffer | None = None
        if fitter is not None and config.source.mqtt is not None:
            self.fit_buffer = FitBuffer(fitter.config.max_readings)

    async def score(self, batches: Sequence[Readings], *, live: bool = True, gaps: int = 0) -> int:
        """Score each stream's readings and hand the results to the sinks; the count scored."""
        scored = 0
        for batch in batches:
            if self.fit_buffer is not None and live:
                self.fit_buffer.add(batch)
            outcome = await self.scorer.score(
                self.name, self.config.model, batch, explain_all=self.explain_all
            )
            self.metrics.count(self.name, outcome)
            scored += outcome.scored
            for result in outcome.results:
                for sink in self.sinks:
                    await sink.write(result, live=live)
        if gaps:
            self.metrics.readings.labels(self.name, "gap").inc(gaps)
        return scored

    # ------------------------------------------------------------------ Prometheus
    async def tick(self, now: float) -> int:
        """Read and score the range after the watermark up to ``now``; readings scored.
        ``SourceError`` when Prometheus did not answer (nothing moved)."""
        assert self.prometheus is not None
        source = self.prometheus.config
        if self.marks is None:
            self.marks = await self.watermarks.load()
        marks = self.marks
        after = marks.get(RANGE_END, now - source.lookback)
        span = aligned_range(after, now, source.step)
        if span is None:
            return 0
        fetched = await self.prometheus.fetch(*span)
        scored = 0
        for batch in fetched.readings:
            mark = marks.get(batch.stream_id, after)
            keep = [i for i, t in enumerate(batch.timestamps) if t > mark]
            if not keep:
                continue
            new = Readings(
                batch.stream_id,
                batch.labels,
                [batch.timestamps[i] for i in keep],
                [batch.rows[i] for i in keep],
            )
            scored += await self.score([new])
            marks[new.stream_id] = new.timestamps[-1]
            await self.watermarks.note(new.stream_id, new.timestamps[-1])
        if fetched.gaps:
            self.metrics.readings.labels(self.name, "gap").inc(fetched.gaps)
        marks[RANGE_END] = span[1]
        await self.watermarks.save(marks)
        return scored

    async def run_prometheus(self) -> None:
        """Tick every ``infer_every`` until cancelled."""
        every = self.config.schedule.infer_every
        while True:
            try:
                await self.tick(time.time())
            except SourceError as exc:
                self.metrics.source_errors.labels(self.name).inc()
                _log.warning("job %s: %s", self.name, exc)
            except Exception:  # a bug in one run must not end the job: the next run retries
                self.metrics.source_errors.labels(self.name).inc()
                _log.exception("job %s: the run failed", self.name)
            await asyncio.sleep(every - time.time() % every)

    async def backfill(self, start: float, end: float) -> int:
        """Score ``[start, end]`` into ``backfill.<stream>`` streams (started afresh), with
        events to the sinks and no live metrics; the watermarks are not touched."""
        assert self.prometheus is not None
        span = aligned_range(start - self.prometheus.config.step, end, self.prometheus.config.step)
        if span is None:
            return 0
        fetched = await self.prometheus.fetch(*span)
        batches = []
        for batch in fetched.readings:
            stream = f"backfill.{batch.stream_id}"[:128]
            await self.scorer.forget(stream)
            batches.append(Readings(stream, batch.labels, batch.timestamps, batch.rows))
        return await self.score(batches, live=False, gaps=fetched.gaps)

    # ------------------------------------------------------------------ fits
    async def fit(self, now: float) -> FitOutcome:
        """Train on the source's last ``fit.window`` up to ``now`` and publish; after a
        publication the model is loaded again (its alias may name the new version)."""
        fitter = self.fitter
        assert fitter is not None
        start = now - fitter.config.window
        if self.fit_buffer is not None:
            batches = self.fit_buffer.since(start)
        else:
            assert self.prometheus is not None
            span = aligned_range(start, now, self.prometheus.config.step)
            try:
                batches = [] if span is None else (await self.prometheus.fetch(*span)).readings
            except SourceError as exc:
                _log.warning("job %s: no data to fit: %s", self.name, exc)
                batches = []
        outcome = await fitter.fit(batches)
        if outcome in ("promoted", "candidate"):
            self.scorer.unload(fitter.model)
        self.metrics.fits.labels(self.name, outcome).inc()
        return outcome

    async def run_fits(self) -> None:
        """Fit every ``fit.every`` on the wall-clock grid until cancelled (in its own
        task: scoring goes on while a fit trains in its worker process)."""
        assert self.fitter is not None
        every = self.fitter.config.every
        while True:
            await asyncio.sleep(every - time.time() % every)
            await self.fit(time.time())

    # ------------------------------------------------------------------ MQTT
    async def run_mqtt(self) -> None:
        """Score readings as they arrive until cancelled."""
        mqtt = self.config.source.mqtt
        assert mqtt is not None
        source = MqttSource(
            self.name,
            mqtt,
            invalid=self.metrics.readings.labels(self.name, "invalid"),
            reconnects=self.metrics.reconnects.labels(self.name),
        )
        self.mqtt_source = source
        await source.run(self.score)

    async def run(self) -> None:
        """This job's loop, whichever source it has, and its fits when it has some."""
        async with asyncio.TaskGroup() as tasks:
            if self.fitter is not None:
                tasks.create_task(self.run_fits())
            tasks.create_task(self.run_prometheus() if self.prometheus else self.run_mqtt())

    async def close(self) -> None:
        """Flush the sinks and close the source's connections."""
        for sink in self.sinks:
            await sink.close()
        if self.prometheus is not None:
            await self.prometheus.close()


class Watcher:
    """Every job of a config over one scorer and one metrics registry."""

    def __init__(self, config: WatchConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        artifacts_dir = config.artifacts_dir or settings.artifacts_dir
        self.artifacts_dir = artifacts_dir
        self.scorer = WatchScorer(settings, artifacts_dir)
        self.metrics = WatchMetrics(config.metrics.max_series)
        self.redis: Redis | None = None
        if config.state == "redis":
            if not settings.redis_url:
                raise WatchConfigError(["state: redis needs ANOMALY_REDIS_URL"])
            self.redis = Redis.from_url(settings.redis_url)
        self.jobs: list[Job] = []
        self.metrics_port: int | None = None
        self._server: WSGIServer | None = None
        self._fit_slot = asyncio.Semaphore(1)
        """One training at a time for the whole watcher (it shares the machine with scoring)."""

    def check(self) -> None:
        """``check_models``: every model loads and fits its job."""
        check_models(self.config, self.scorer)

    def watermarks_for(self, job: str) -> Watermarks:
        """Where ``job`` keeps its watermarks (Redis with ``state: redis``, else a file)."""
        if self.redis is not None:
            return RedisWatermarks(self.redis, self.settings.stream_prefix, job)
        return FileWatermarks(Path(self.config.state_dir), job)

    def job(self, config: JobConfig) -> Job:
        """The ``Job`` of ``config``, with its fitter when it has a ``fit`` schedule."""
        fitter = None
        if config.fit is not None:
            model = config.fit.model or config.model.name
            fitter = Fitter(config.name, model, config.fit, self.artifacts_dir, self._fit_slot)
        return Job(config, self.scorer, self.metrics, self.watermarks_for(config.name), fitter)

    async def start(self) -> None:
        """Check the models, serve ``/metrics`` and build the jobs (their sinks connect)."""
        self.check()
        where = f"{self.config.metrics.host}:{self.config.metrics.port}"
        try:
            server, _ = start_http_server(
                self.config.metrics.port, self.config.metrics.host, registry=self.metrics.registry
            )
        except OSError as exc:
            raise WatchConfigError(
                [f"metrics: cannot listen on {where} ({exc.strerror})"]
            ) from None
        self._server = server
        self.metrics_port = int(server.server_port)
        self.jobs = [self.job(job) for job in self.config.jobs]

    async def run(self) -> None:
        """Run every job until cancelled, then close everything."""
        await self.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                for job in self.jobs:
                    tasks.create_task(job.run())
        finally:
            await self.close()

    async def backfill(self, start: float, end: float) -> dict[str, int]:
        """Backfill every Prometheus job over ``[start, end]``; readings scored per job."""
        self.check()
        self.jobs = [self.job(job) for job in self.config.jobs]
        try:
            return {job.name: await job.backfill(start, end) for job in self.jobs if job.prometheus}
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop serving, flush the sinks, close every connection."""
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
        for job in self.jobs:
            with contextlib.suppress(Exception):
                await job.close()
        await self.scorer.close()
        if self.redis is not None:
            await self.redis.aclose()
