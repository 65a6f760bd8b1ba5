"""The load-with-faults script, short mode: a real server, Redis killed and restarted, a
reload mid-run; no request may fail and no answer may be stale or wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "loadtest.py"


def test_short_load_with_faults_has_no_failures(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(SCRIPT), "--duration", "10", "--concurrency", "4"]
    command += ["--redis-cooldown", "0.5", "--json", str(report_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    total = report["total"]
    assert total["sent"] > 100
    assert (total["failed"], total["wrong_answers"], total["stale_version"]) == (0, 0, 0)
    phases = report["phases"]
    assert list(phases) == ["warm", "redis_down", "redis_back", "reloaded"]
    assert all(phase["sent"] > 0 for phase in phases.values())
    assert phases["warm"]["cache_hit_ratio"] > 0  # Redis answered before the kill
    assert phases["redis_down"]["cache_hit_ratio"] == 0  # served by the model alone
    assert phases["reloaded"]["cache_hit_ratio"] > 0  # Redis back, new version cached
    assert any("reload -> HTTP 200" in event for event in report["events"])
    assert report["server_exit_code"] == 0
