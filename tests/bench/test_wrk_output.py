"""The benchmark reads wrk's report correctly (units, percentiles, error counts)."""

from __future__ import annotations

import pytest
from bench.load import parse_wrk

REPORT = """Running 1s test @ http://127.0.0.1:8000/predict
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  45.00ms   90.00%
    Req/Sec     4.20k   100.00     4.40k    80.00%
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  4213 requests in 1.00s, 1.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   4199.50
Transfer/sec:      1.00MB
"""


def test_wrk_report_is_parsed_with_units_and_errors() -> None:
    result = parse_wrk(REPORT, connections=16, duration_s=1.0)
    assert result["requests"] == 4213
    assert result["requests_per_s"] == pytest.approx(4199.5)
    assert result["p50_ms"] == pytest.approx(0.85)
    assert result["p99_ms"] == pytest.approx(1500.0)
    assert result["max_ms"] == pytest.approx(45.0)
    assert result["non_2xx"] == 3
    assert result["errors"] == 6


def test_unreadable_report_is_an_error() -> None:
    with pytest.raises(ValueError, match="could not parse"):
        parse_wrk("wrk: connection refused", connections=1, duration_s=1.0)
