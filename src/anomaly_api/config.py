"""The one ``Settings`` object, read from the environment (prefix ``ANOMALY_``) at start-up."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_list(value: object) -> object:
    """Lists from the environment: a JSON list or comma-separated values."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


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
        description="Redis cache URL; the in-process cache is used when unset.",
    )
    cache_ttl_s: float = Field(default=3600.0, gt=0, description="Lifetime of a cached prediction.")
    cache_max_entries: int = Field(
        default=100_000, gt=0, description="Size of the in-process cache."
    )
    cache_prefix: str = Field(default="anomaly:pred:", description="Prefix of every cache key.")
    redis_timeout_s: float = Field(default=0.05, gt=0, description="Timeout of one Redis call.")
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
    max_observation_id_length: int = Field(default=128, ge=1)
    offload_min_rows: int = Field(
        default=64,
        ge=1,
        description="Score batches of at least this many uncached rows in a worker thread "
        "(smaller ones run on the event loop, where a thread hop would cost more).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Operations and security (README "Operations").
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
    admin_api_keys: KeyList = Field(default_factory=list, description="Keys for /admin routes.")
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


@lru_cache
def get_settings() -> Settings:
    """Build the settings once; tests replace them through dependency overrides."""
    return Settings()
