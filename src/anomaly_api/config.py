"""The one ``Settings`` object, read from the environment (prefix ``ANOMALY_``) at start-up."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_list(value: object) -> object:
    """Lists from the environment: a JSON list or comma-separated values."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _upper(value: object) -> object:
    """Case-insensitive choices: ``warning`` is ``WARNING``."""
    return value.upper() if isinstance(value, str) else value


def _blank_is_unset(value: object) -> object:
    """``ANOMALY_WORKERS=`` (compose's ``${ANOMALY_WORKERS:-}``) means not set."""
    return None if isinstance(value, str) and not value.strip() else value


_Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
KeyList = Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_list)]
HashList = Annotated[list[_Sha256Hex], NoDecode, BeforeValidator(_split_list)]


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``ANOMALY_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="ANOMALY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    artifacts_dir: Path = Field(default=Path("artifacts"), description="Where model versions live.")
    model_version: str | None = Field(
        default=None, description="Version to serve; the `LATEST` pointer when unset."
    )
    model_memory_mb: float = Field(
        default=1024.0,
        gt=0,
        description="Memory budget of the named models loaded besides `default` (each counted "
        "as its model file, its compiled scorer's arrays and 0.5 MB of serving machinery); "
        "past it the least recently used idle one is unloaded.",
    )
    auto_promote: bool = Field(
        default=False,
        description="Promote a newly registered version of a named model to `production` when "
        "its held-out F1 is not worse than the production version's (else it stays `candidate`).",
    )
    metrics_max_models: int = Field(
        default=20,
        ge=1,
        description="Distinct `model` label values in the per-model metrics; later models are "
        "counted under `other`.",
    )
    on_version_mismatch: Literal["warn", "error"] = Field(
        default="warn",
        description="What to do when the artifact was trained with another scikit-learn version.",
    )
    inference_backend: Literal["fast", "numpy", "sklearn"] = Field(
        default="fast",
        description="`fast`: exact fast path in the C kernel compiled when the package was "
        "built; `numpy`: the same scores in vectorised NumPy (no compiler needed, slower per "
        "row); `sklearn`: plain scikit-learn (the reference).",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ANOMALY_REDIS_URL", "REDIS_URL"),
        description="Redis shared by every replica and worker: streams, admin revisions, "
        "training jobs, and the prediction cache when `PREDICTION_CACHE` is `redis`. "
        "Unset: all of them live in this process.",
    )
    prediction_cache: Literal["memory", "redis", "off"] = Field(
        default="memory",
        description="Where predictions are cached. `memory`: each process keeps its own LRU "
        "(`CACHE_MAX_ENTRIES`), with or without Redis; `redis`: one cache every replica and "
        "worker shares (needs `REDIS_URL`; its two round trips per request cost more CPU "
        "than scoring a reading, docs/configuration.md#cache); `off`: nothing is cached.",
    )
    cache_ttl_s: float = Field(default=3600.0, gt=0, description="Lifetime of a cached prediction.")
    cache_max_entries: int = Field(
        default=100_000, gt=0, description="Size of the in-process cache (of each process)."
    )
    cache_prefix: str = Field(default="anomaly:pred:", description="Prefix of every cache key.")
    redis_timeout_s: float = Field(default=0.05, gt=0, description="Timeout of one Redis call.")
    redis_connect_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="Budget of the calls off the request path that may open a connection: the "
        "warm-up at start, the /health probe, subscribing to the revision channel. A request's "
        "own Redis call still gives up after REDIS_TIMEOUT_S.",
    )
    redis_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    redis_breaker_cooldown_s: float = Field(
        default=5.0, gt=0, description="How long an open breaker skips Redis before one trial."
    )
    max_batch_rows: int = Field(default=1000, ge=1, description="Most rows in one batch request.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_discard_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Before a 413, read and throw away the rest of an oversized body up to this "
        "many bytes in all, so that clients which write the whole body before reading (Python's "
        "urllib) see the 413 rather than a connection reset; beyond it the connection is closed "
        "unread (0: never discard).",
    )
    max_discard_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest time spent discarding the rest of an oversized body before the 413.",
    )
    max_observation_id_length: int = Field(
        default=128, ge=1, description="Longest `observation_id` accepted (422 beyond)."
    )
    offload_min_rows: int = Field(
        default=64,
        ge=1,
        description="Score batches of at least this many uncached rows in a worker thread "
        "(smaller ones run on the event loop, where a thread hop would cost more).",
    )
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = (
        Field(default="INFO", description="Log level (any case).")
    )
    host: str = Field(
        default="127.0.0.1", description="Address `anomaly-api serve` binds (`--host` overrides)."
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port `anomaly-api serve` binds (`--port` overrides).",
    )
    loop: Literal["asyncio", "uvloop", "auto"] = Field(
        default="asyncio",
        description="Event loop of `anomaly-api serve` (uvicorn's `loop` option; `--loop` "
        "overrides): the standard `asyncio` loop, `uvloop`, or `auto` (uvloop when "
        "installed). Under saturation uvloop served some requests far later than their "
        "turn (docs/performance.md).",
    )
    workers: Annotated[int | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None,
        ge=1,
        description="Worker processes of `anomaly-api serve` (`--workers` overrides): unset, "
        "one per core the process may use (CPU affinity and cgroup CPU quota) "
        "when `REDIS_URL` is set, else 1. More than 1 needs `REDIS_URL` (docs/operations.md).",
    )
    worker_start_timeout_s: int = Field(
        default=60,
        ge=1,
        description="Several workers: how long a new worker (SIGHUP replaces each in turn) "
        "may take to load its model before the replacement is given up, the old one kept; "
        "also how long a worker may leave the supervisor's health ping unanswered.",
    )
    max_in_flight: int = Field(
        default=256,
        ge=0,
        description="Admission control: requests served at once by each worker process "
        "(health and metrics routes not counted); past it a request is answered 503 "
        "`overloaded` with Retry-After at once instead of queueing. 0 turns it off.",
    )
    overload_retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After (s) of a 503 `overloaded`."
    )
    # Operations and security (docs/operations.md).
    log_format: Literal["json", "text"] = Field(
        default="json", description="One JSON object per log line, or `text` for local reading."
    )
    max_header_bytes: int = Field(
        default=16_384, ge=1024, description="Largest total request header size (431 beyond)."
    )
    request_id_max_length: int = Field(
        default=128, ge=8, le=1024, description="Longest X-Request-ID kept (else a new id)."
    )
    api_keys: KeyList = Field(
        default_factory=list, description="Client API keys (comma-separated); none = open API."
    )
    api_key_hashes: HashList = Field(
        default_factory=list, description="SHA-256 hex digests of further client keys."
    )
    admin_api_keys: KeyList = Field(
        default_factory=list,
        description="Keys for /admin routes. With no key at all, /admin answers loopback "
        "clients only (403 `admin_key_not_configured` to others).",
    )
    admin_api_key_hashes: HashList = Field(
        default_factory=list, description="SHA-256 hex digests of further admin keys."
    )
    auth_protect_health: bool = Field(default=False, description="Require a key on /health*.")
    auth_protect_metrics: bool = Field(default=False, description="Require a key on /metrics.")
    shutdown_timeout_s: int = Field(
        default=30, ge=1, description="SIGTERM: longest wait (s) for in-flight requests."
    )
    reload_on_sighup: bool = Field(default=True, description="SIGHUP reloads the model.")
    metrics_anomaly_window: int = Field(
        default=1000, ge=1, description="Rows behind the rolling anomaly-rate gauge."
    )
    oip_model_name: str = Field(
        default="anomaly-detector",
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Model name of the Open Inference Protocol routes (`/v2/models/<name>`).",
    )
    # Stateful sensor streams (docs/streams.md); Redis timeouts and breaker as the cache's.
    stream_max_streams: int = Field(
        default=10_000,
        ge=1,
        description="Most live streams; a new stream beyond it is refused (429/503), "
        "live ones are never evicted.",
    )
    stream_idle_ttl_s: float = Field(
        default=3600.0, gt=0, description="A stream is forgotten this long after its last reading."
    )
    stream_max_window: int = Field(
        default=1024, ge=1, description="Largest trailing window (readings) a stream may keep."
    )
    stream_adaptation: bool = Field(
        default=True,
        description="Each stream's threshold slowly follows its normal operation (frozen on "
        "anomalies; `false_alarm`/`expected` feedback widens it); a request's `adapt` "
        "overrides it. Needs a model that kept its scores.",
    )
    stream_adaptation_memory: float = Field(
        default=200.0,
        ge=10.0,
        le=1_000_000.0,
        description="Readings over which a stream's adaptive level can move by two spreads of "
        "the model's normal scores: smaller follows drift faster (and a slow fault sooner).",
    )
    stream_max_events: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Events kept per stream (`GET /streams/{id}/events`); the oldest are dropped.",
    )
    stream_recent_scores: int = Field(
        default=500,
        ge=0,
        le=2000,
        description="Recent scores (timestamp, score, threshold, flag) kept per stream for "
        "`GET /streams/{id}/scores` and the operator page; 0 records none.",
    )
    stream_redis_max_connections: int = Field(
        default=64,
        ge=1,
        description="Most concurrent Redis calls of the stream store per process; further "
        "calls wait for a free connection (they do not fall back to memory for it).",
    )
    stream_prefix: str = Field(
        default="anomaly:stream:", description="Prefix of every Redis key of the stream store."
    )
    stream_max_readings: int = Field(
        default=16, ge=1, description="Most readings in one `POST /streams/{id}/readings`."
    )
    stream_retry_after_s: int = Field(
        default=60,
        ge=1,
        description="`Retry-After` (seconds) of the 429 answered while the stream store is full.",
    )
    window_max_readings: int = Field(
        default=2000, ge=1, description="Most readings in one `POST /predict/window`."
    )
    # Revisions announced to every replica (docs/operations.md#every-replica-follows).
    revision_prefix: str = Field(
        default="anomaly:model:",
        min_length=1,
        description="With Redis: replicas announce admin swaps on the pub/sub channel "
        "`<prefix>revisions` and keep the last announcement in the key `<prefix>announced`.",
    )
    revision_retry_s: float = Field(
        default=2.0,
        gt=0,
        description="With Redis: wait between attempts to (re)subscribe to the revision "
        "channel, and between re-sends of an announcement Redis did not take.",
    )
    # Training through the API (docs/training-api.md).
    training_workers: int = Field(
        default=1,
        ge=1,
        description="Training jobs run at once per replica, each in its own worker process.",
    )
    training_max_queued: int = Field(
        default=4,
        ge=0,
        description="Training jobs that may wait for a worker per replica; past it a "
        "submission is answered 429 with Retry-After.",
    )
    training_retry_after_s: int = Field(
        default=60, ge=1, description="`Retry-After` (seconds) of a 429 of a full job queue."
    )
    training_max_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest training data upload (`POST /models/{name}/versions`; 413 "
        "beyond); streamed to a temporary file, never held in memory.",
    )
    training_data_dir: Path | None = Field(
        default=None,
        description="Directory whose CSV/Parquet files a training job may name by a "
        "relative `path` (nothing outside it, symlinks included); unset: uploads only.",
    )
    training_job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A queued or running job whose replica has not renewed it (every third "
        "of this) for this long is marked failed by whoever reads it.",
    )
    training_job_ttl_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="With Redis: a job record expires this long after its last change.",
    )
    training_job_prefix: str = Field(
        default="anomaly:job:",
        min_length=1,
        description="With Redis: prefix of the job records every replica shares.",
    )
    # Monitoring (docs/monitoring.md): input drift and alarm policies.
    drift_enabled: bool = Field(
        default=True, description="Track input drift against the model's training data."
    )
    drift_window_rows: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="Most recent input rows each replica keeps for drift (fixed memory: "
        "rows x features x 8 bytes).",
    )
    drift_min_rows: int = Field(
        default=200, ge=1, description="Rows the window must hold before a feature can drift."
    )
    drift_psi_threshold: float = Field(
        default=0.25, gt=0, description="A feature drifts when its PSI reaches this."
    )
    drift_ks_statistic_threshold: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="...or when its KS statistic reaches this with a p-value at most "
        "`drift_ks_pvalue_threshold`.",
    )
    drift_ks_pvalue_threshold: float = Field(
        default=0.01, gt=0, lt=1, description="Largest KS p-value that counts as drift."
    )
    alarm_min_anomalies: int = Field(
        default=3, ge=1, description="Alarm policy: anomalies (k) within the window that alarm."
    )
    alarm_window: float = Field(
        default=10,
        gt=0,
        description="Alarm policy: the window, in readings or seconds (`alarm_unit`).",
    )
    alarm_cooldown: float = Field(
        default=30,
        ge=0,
        description="Alarm policy: after an alarm, no other one for this many readings or seconds.",
    )
    alarm_unit: Literal["readings", "seconds"] = Field(
        default="readings", description="Unit of `alarm_window` and `alarm_cooldown`."
    )
    stream_class_separator: str = Field(
        default=":",
        min_length=1,
        max_length=8,
        description="A stream's class (the `stream_class` label of "
        "`anomaly_stream_alarms_total`) is its id up to the first occurrence of this "
        "(the whole id when absent): `plant-3:pump-12` is in class `plant-3`.",
    )
    stream_max_classes: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Stream classes counted under their own label per replica (the first "
        "ones to raise an alarm); alarms of later classes are counted as `other`.",
    )

    @model_validator(mode="after")
    def _redis_cache_needs_redis(self) -> Settings:
        """A shared cache that cannot connect would only ever miss: refuse it at start-up."""
        if self.prediction_cache == "redis" and not self.redis_url:
            raise ValueError(
                "ANOMALY_PREDICTION_CACHE=redis needs ANOMALY_REDIS_URL (or REDIS_URL): "
                "the shared prediction cache lives in Redis"
            )
        return self


class SettingsError(ValueError):
    """A setting from the environment or ``.env`` is not allowed; the message is one line."""


def env_names(field: str) -> list[str]:
    """The environment variables that set ``field`` (``ANOMALY_<FIELD>``, plus any alias)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"ANOMALY_{field.upper()}"]


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", Path: "a path"}
_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def allowed_values(field: str) -> str:
    """What ``field`` accepts, in words, from its type and constraints (docs and errors)."""
    info = Settings.model_fields[field]
    annotation: Any = info.annotation
    any_case = any(getattr(m, "func", None) is _upper for m in info.metadata)
    if get_origin(annotation) is Literal:
        choices = ", ".join(f"`{choice}`" for choice in get_args(annotation))
        return f"one of {choices}" + (" (any case)" if any_case else "")
    if annotation == list[SecretStr]:
        return "keys, comma-separated or a JSON list"
    if get_origin(annotation) is list:
        return "SHA-256 hex digests (64 hex digits), comma-separated or a JSON list"
    optional = type(None) in get_args(annotation)
    base = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    words = _TYPE_WORDS.get(base, "a string")
    bounds = [
        f"{symbol} {getattr(m, attr)}"
        for m in info.metadata
        for kind, attr, symbol in _BOUNDS
        if isinstance(m, kind)
    ]
    text = words + (" " + " and ".join(bounds) if bounds else "")
    return text + (", or unset" if optional else "")


def load_settings() -> Settings:
    """Read the settings; a value that is not allowed raises `SettingsError`, one line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings: its own message says it all
                problems.append(str(error.get("ctx", {}).get("error", error["msg"])))
                continue
            name = str(error["loc"][0])
            field = name if name in Settings.model_fields else _field_of_env(name)
            shown = name if name.isupper() else env_names(field)[0] if field else name
            value = os.environ.get(shown, error.get("input"))
            if field and Settings.model_fields[field].annotation == list[SecretStr]:
                value = "***"  # never print a key
            allowed = allowed_values(field).replace("`", "") if field else error["msg"]
            problems.append(f"{shown}={value!s} is not allowed: {allowed}")
        raise SettingsError("; ".join(dict.fromkeys(problems))) from None


def _field_of_env(name: str) -> str | None:
    return next((f for f in Settings.model_fields if name in env_names(f)), None)


@lru_cache
def get_settings() -> Settings:
    """Build the settings once (`SettingsError` on a bad value); tests override them."""
    return load_settings()
