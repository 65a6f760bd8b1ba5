"""Log formatters: one JSON object per line with the extra fields; readable text."""

from __future__ import annotations

import json
import logging

from anomaly_api.logging_config import JsonFormatter, TextFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "anomaly_api.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_line_carries_extra_fields() -> None:
    line = JsonFormatter().format(_record(request_id="abc", status=200, rows=3))
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "GET /x"
    assert payload["level"] == "INFO"
    assert payload["logger"] == "anomaly_api.access"
    assert (payload["request_id"], payload["status"], payload["rows"]) == ("abc", 200, 3)
    assert "args" not in payload
    assert "msg" not in payload


def test_json_line_keeps_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_text_format_appends_fields() -> None:
    line = TextFormatter().format(_record(request_id="abc", status=200))
    assert line.endswith("GET /x request_id=abc status=200")


def test_json_timestamps_are_datetimes_iso_format_to_the_millisecond() -> None:
    from datetime import UTC, datetime

    formatter = JsonFormatter()
    second = 1_765_000_000
    fractions = (0.0, 0.0004995, 0.0005, 0.123456, 0.9994999, 0.9995, 0.9999994, 0.9999996)
    for created in [second + f for f in fractions] + [second + 1.0, 0.25, 4e9 + 0.5]:
        record = _record()
        record.created = created
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record))["ts"] == expected, created
