"""``anomaly-api serve`` hands uvicorn the configured event loop: asyncio unless told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

import anomaly_api.cli.shutdown
import anomaly_api.logging_config
from anomaly_api.cli.main import app
from anomaly_api.config import get_settings

runner = CliRunner()


@pytest.fixture
def uvicorn_calls(
    monkeypatch: pytest.MonkeyPatch, tiny_artifacts_dir: Path
) -> Iterator[list[dict[str, Any]]]:
    """What ``uvicorn.run`` would have been given (the server itself is not started)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    # No SIGTERM handler and no logging set-up in the test process.
    monkeypatch.setattr(anomaly_api.cli.shutdown, "exit_cleanly_after_sigterm", lambda: None)
    monkeypatch.setattr(anomaly_api.logging_config, "configure_logging", lambda *a: None)
    for name in ("ANOMALY_LOOP", "ANOMALY_MAX_IN_FLIGHT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANOMALY_ARTIFACTS_DIR", str(tiny_artifacts_dir))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "env", "loop"),
    [
        ([], None, "asyncio"),
        (["--loop", "uvloop"], None, "uvloop"),
        ([], "auto", "auto"),
        (["--loop", "asyncio"], "uvloop", "asyncio"),  # the option wins over the setting
    ],
)
def test_the_loop_is_asyncio_unless_told(
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    loop: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("ANOMALY_LOOP", env)
    result = runner.invoke(app, ["serve", "--no-train-if-missing", *args])
    assert result.exit_code == 0, result.output
    (kwargs,) = uvicorn_calls
    assert kwargs["loop"] == loop


def test_an_unknown_loop_is_refused(uvicorn_calls: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["serve", "--loop", "trio"])
    assert result.exit_code == 2
    assert uvicorn_calls == []
