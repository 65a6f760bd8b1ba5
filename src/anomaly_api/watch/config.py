"""The watcher's ``watch.yaml``: jobs (source, model, streams, schedule, sinks), validated
once at start so a bad file fails before anything connects.

Every error is one line naming its key (``jobs[0].schedule.infer_every: ...``); unknown
keys are refused (a typo must not silently change what runs). Durations are written
``500ms``, ``15s``, ``5m``, ``2h`` or ``1d`` and held as seconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml  # type: ignore[import-untyped]  # no stubs pinned
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from anomaly_api.registry import validate_model_name
from anomaly_api.training.request import RequestError, TrainingRequest, check_request

__all__ = [
    "Duration",
    "FitConfig",
    "JobConfig",
    "MetricsSinkConfig",
    "MqttConfig",
    "MqttSinkConfig",
    "PrometheusSourceConfig",
    "WatchConfig",
    "WatchConfigError",
    "load_watch_config",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class WatchConfigError(ValueError):
    """The file cannot run: one line per problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: object) -> float:
    """``"15s"`` -> 15.0 seconds; a bare number is refused (the unit must be written)."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is not None and float(match[1]) > 0:
            return float(match[1]) * _UNIT_SECONDS[match[2]]
    raise ValueError(f"{value!r} is not a duration: write e.g. 500ms, 15s, 5m, 2h or 1d (> 0)")


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written with a unit in the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """Which registered model scores the job: a name and an alias (its ``LATEST`` when
    the alias points nowhere)."""

    name: str = "default"
    alias: str = "production"


class EnvAuth(_Strict):
    """Credentials read from the environment (never written in the file)."""

    bearer_token_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> EnvAuth:
        basic = self.username_env is not None or self.password_env is not None
        if self.bearer_token_env is not None and basic:
            raise ValueError("give bearer_token_env or username_env/password_env, not both")
        if basic and (self.username_env is None or self.password_env is None):
            raise ValueError("basic auth needs both username_env and password_env")
        return self


class PrometheusSourceConfig(_Strict):
    """PromQL range queries: one query whose ``channel_label`` names the channel, or one
    query per channel (``queries``: channel -> PromQL)."""

    url: str
    query: str | None = None
    channel_label: str | None = None
    queries: dict[str, str] | None = None
    group_by: list[str] = Field(default_factory=list)
    step: Duration = 15.0
    lookback: Duration = 3600.0
    """How far back the first run (no watermark yet) reads."""
    timeout: Duration = 10.0
    auth: EnvAuth | None = None

    @model_validator(mode="after")
    def _one_way_to_channels(self) -> PrometheusSourceConfig:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give either query (with channel_label) or queries, not both")
        if self.query is not None and self.channel_label is None:
            raise ValueError("query needs channel_label (the label that names the channel)")
        if self.queries is not None and not self.queries:
            raise ValueError("queries must name at least one channel")
        return self


class MqttConfig(_Strict):
    """A broker connection (TLS and user/password optional, the password from the env)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    client_id: str | None = None
    keepalive: Duration = 30.0
    reconnect_max: Duration = 30.0
    """The longest wait between reconnection attempts (the back-off doubles up to it)."""


class MqttSourceConfig(MqttConfig):
    """Readings ``{"ts": ..., "values": {channel: value}}`` on ``topics`` (filters, QoS 1);
    the stream id is the topic level ``stream_level`` (0 = the first)."""

    topics: list[str] = Field(min_length=1)
    stream_level: int = Field(1, ge=0)


class SourceConfig(_Strict):
    """Exactly one source."""

    prometheus: PrometheusSourceConfig | None = None
    mqtt: MqttSourceConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceConfig:
        if (self.prometheus is None) == (self.mqtt is None):
            raise ValueError("give exactly one source: prometheus or mqtt")
        return self


class ScheduleConfig(_Strict):
    """When a Prometheus job reads (an MQTT job scores every reading as it comes)."""

    infer_every: Duration = 15.0


class MqttSinkConfig(MqttConfig):
    """Answers to ``<topic_prefix>/<stream>/answers`` and events to ``.../events``
    (QoS 1, never retained)."""

    topic_prefix: str = "anomaly"
    answers: bool = True


class WebhookSinkConfig(_Strict):
    """Events POSTed as JSON (Alertmanager's webhook shape), retried, then dead-lettered."""

    url: str
    retries: int = Field(3, ge=0, le=20)
    backoff: Duration = 1.0
    timeout: Duration = 5.0


class SinksConfig(_Strict):
    """Where a job's results go (``metrics``: the watcher's own ``/metrics``)."""

    metrics: bool = True
    mqtt: MqttSinkConfig | None = None
    webhook: WebhookSinkConfig | None = None


class FitConfig(_Strict):
    """Retrain on the source's last ``window`` every ``every`` (a new ``candidate`` of
    ``model``, promoted under the registry's rule when ``auto_promote``); the training
    options are those of ``anomaly-api train``."""

    every: Duration
    window: Duration
    model: str | None = None
    """The registered model the new versions go to (default: the job's model)."""
    auto_promote: bool = False
    max_readings: int = Field(100_000, ge=50, le=10_000_000)
    """MQTT: readings kept in memory for the next fit (the oldest dropped beyond)."""
    seed: int = 42
    target_fpr: float | None = None
    detectors: list[str] | None = None
    min_votes: int | None = None
    contamination: float | None = None
    model_window: int | None = None
    """Readings per window: trains a time-aware model (``--window``)."""

    @field_validator("model")
    @classmethod
    def _model_name(cls, name: str | None) -> str | None:
        return None if name is None else validate_model_name(name)

    def request(self) -> TrainingRequest:
        """The training request a fit runs (data: ``ts``, ``stream`` and the channels)."""
        return TrainingRequest(
            seed=self.seed,
            target_fpr=self.target_fpr,
            detectors=None if self.detectors is None else tuple(self.detectors),
            min_votes=self.min_votes,
            contamination=self.contamination,
            window=self.model_window,
            timestamp_column=None if self.model_window is None else "ts",
            stream_column=None if self.model_window is None else "stream",
        )

    @model_validator(mode="after")
    def _trainable(self) -> FitConfig:
        try:
            check_request(self.request(), has_data=True, spell=_fit_key)
        except RequestError as exc:
            raise ValueError(str(exc)) from None
        return self


def _fit_key(name: str) -> str:
    """How a fit's messages name a training option: its key under ``fit``."""
    return "model_window" if name == "window" else name


class JobConfig(_Strict):
    """One job: a source read on a schedule, scored by one model, written to sinks."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    model: ModelRef = Field(default_factory=ModelRef)
    source: SourceConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    fit: FitConfig | None = None


class MetricsSinkConfig(_Strict):
    """The watcher's ``/metrics`` server and its series bound."""

    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    max_series: int = Field(10_000, ge=1)
    """Streams (label sets) exposed at most; a new one beyond is refused and counted."""


class WatchConfig(_Strict):
    """The whole file."""

    artifacts_dir: Path | None = None
    """Where the named models live (default: ``ANOMALY_ARTIFACTS_DIR``)."""
    state_dir: Path = Path("watch-state")
    """Where the watermarks are kept (one JSON file per job) when Redis is not configured."""
    state: Literal["file", "redis"] = "file"
    metrics: MetricsSinkConfig = Field(default_factory=MetricsSinkConfig)
    jobs: list[JobConfig] = Field(min_length=1)

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, jobs: list[JobConfig]) -> list[JobConfig]:
        names = [job.name for job in jobs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"job names must be unique: {', '.join(twice)}")
        return jobs


def _key(loc: tuple[int | str, ...]) -> str:
    """``("jobs", 0, "schedule")`` -> ``jobs[0].schedule``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse_watch_config(data: Any) -> WatchConfig:
    """Validate already-parsed YAML; ``WatchConfigError`` lists every problem."""
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{_key(error['loc'])}: {message}")
        raise WatchConfigError(problems) from None


def load_watch_config(path: Path) -> WatchConfig:
    """Read and validate ``path``; ``WatchConfigError`` for an unreadable or invalid file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WatchConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise WatchConfigError(
            [f"{path}{line}: not YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_watch_config(data)
