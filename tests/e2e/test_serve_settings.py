"""A bad setting stops ``anomaly-api serve`` with one line; the log level takes any case."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from e2e_service import cli_path

from anomaly_api.config import Settings
from anomaly_api.testing import free_port


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
    env.pop("REDIS_URL", None)
    env.update(ANOMALY_ARTIFACTS_DIR=str(tmp_path / "artifacts"), **settings)
    return env


def serve_with(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """``anomaly-api serve`` with these settings, to its end (a bad setting ends it at once)."""
    return subprocess.run(
        [cli_path(), "serve", "--no-train-if-missing"],
        env=clean_env(tmp_path, **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("ANOMALY_CACHE_TTL_S", "0", "a number > 0"),
        ("ANOMALY_LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR (any case)"),
        ("ANOMALY_PORT", "abc", "an integer >= 1 and <= 65535"),
        ("ANOMALY_INFERENCE_BACKEND", "gpu", "one of fast, numpy, sklearn"),
    ],
)
def test_bad_setting_stops_serve_with_one_line(
    tmp_path: Path, variable: str, value: str, allowed: str
) -> None:
    result = serve_with(tmp_path, **{variable: value})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {variable}={value} is not allowed: {allowed}"]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_redis_cache_without_redis_stops_serve_with_one_line(tmp_path: Path) -> None:
    result = serve_with(tmp_path, ANOMALY_PREDICTION_CACHE="redis")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: ANOMALY_PREDICTION_CACHE=redis needs ANOMALY_REDIS_URL (or REDIS_URL): "
        "the shared prediction cache lives in Redis"
    ]
    assert result.stdout == ""


def test_two_bad_settings_are_named_on_one_line(tmp_path: Path) -> None:
    result = serve_with(tmp_path, ANOMALY_CACHE_TTL_S="-1", ANOMALY_MAX_BATCH_ROWS="0")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "ANOMALY_CACHE_TTL_S=-1 is not allowed" in line
    assert "ANOMALY_MAX_BATCH_ROWS=0 is not allowed: an integer >= 1" in line


def test_api_keys_never_appear_in_the_error(tmp_path: Path) -> None:
    result = serve_with(tmp_path, ANOMALY_API_KEYS='["secret-key", 5', ANOMALY_CACHE_TTL_S="0")
    assert result.returncode == 2
    assert "secret-key" not in result.stderr


@pytest.mark.parametrize("value", ["warning", "Debug", "ERROR"])
def test_log_level_is_case_insensitive(value: str) -> None:
    assert Settings(_env_file=None, log_level=value).log_level == value.upper()  # type: ignore[call-arg]


def test_serve_starts_with_a_lowercase_log_level(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [cli_path(), "serve", "--no-train-if-missing", "--port", str(port)],
        env=clean_env(tmp_path, ANOMALY_LOG_LEVEL="warning", ANOMALY_HOST="127.0.0.1"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200, process.stderr.read() if process.poll() is not None else "no answer"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"not allowed" not in stderr
