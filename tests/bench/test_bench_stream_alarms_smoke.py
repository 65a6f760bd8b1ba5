"""The stream-alarm benchmark's quick mode runs end to end and stores every alarm state."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_smoke import run_smoke


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stream_alarm_bench_smoke_writes_both_backends(tmp_path: Path) -> None:
    out = tmp_path / "stream_alarms.json"
    results, _ = run_smoke("bench.stream_alarms", out, timeout_s=280)
    assert results["meta"]["mode"] == "smoke"
    for backend in ("memory", "redis"):
        numbers = results[backend]
        assert numbers["append_us"] > 0
        assert numbers["append_with_alarms_us"] > 0
        assert numbers["not_stored"] == 0  # one caller: every alarm state is stored
