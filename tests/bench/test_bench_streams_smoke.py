"""The stream-store benchmark's quick mode runs end to end and writes every key."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_smoke import run_smoke


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stream_bench_smoke_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "streams.json"
    results, _ = run_smoke("bench.streams", out, timeout_s=280)
    assert results["meta"]["mode"] == "smoke"
    memory, redis = results["memory"], results["redis"]
    for numbers in (memory, redis):
        assert numbers["appends_per_s_single_client"] > 0
        assert numbers["appends_per_s_64_tasks"] > 0
    assert memory["window_array_nbytes"] == 60 * 9 * 8
    assert memory["heap_per_stream"] > memory["window_array_nbytes"]
    assert redis["window_value_bytes"] == 29 + len("bench-model-1") + 60 * 9 * 8
    assert redis["memory_usage_window_key"] > redis["window_value_bytes"]
    assert redis["used_memory_per_stream"] > 0
    assert redis["server_us_per_append"] > 0
