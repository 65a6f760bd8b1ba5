"""The stream-alarm benchmark's quick mode runs end to end and stores every alarm state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stream_alarm_bench_smoke_writes_both_backends(tmp_path: Path) -> None:
    out = tmp_path / "stream_alarms.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.stream_alarms", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["meta"]["mode"] == "smoke"
    for backend in ("memory", "redis"):
        numbers = results[backend]
        assert numbers["append_us"] > 0
        assert numbers["append_with_alarms_us"] > 0
        assert numbers["not_stored"] == 0  # one caller: every alarm state is stored
