"""The Redis plumbing shared by the prediction cache and the stream store."""

from __future__ import annotations

import logging

import pytest

from anomaly_api.service.redis_support import ThrottledWarning, describe


def test_describe_names_the_error_type_even_without_a_message() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("bad")) == "ValueError: bad"


def test_throttled_warning_logs_once_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = logging.getLogger("tests.redis_support")
    warn = ThrottledWarning(30.0, lambda: now[0], log=log)
    with caplog.at_level(logging.WARNING, logger="tests.redis_support"):
        warn("call %s failed", "GET")
        now[0] += 1.0
        warn("call %s failed", "GET")
        warn("call %s failed", "GET")
        now[0] += 30.0
        warn("call %s failed", "SET")
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.redis_support"]
    assert messages == ["call GET failed", "call SET failed (2 more since the last report)"]
