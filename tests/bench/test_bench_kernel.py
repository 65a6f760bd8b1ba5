"""``python -m bench.kernel --smoke`` runs end to end and writes every measurement (no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kernel_bench_smoke_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "kernel.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.kernel", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"c", "numpy", "sklearn"} <= set(results["variants"])
    for n_rows in ("1", "1000"):
        assert all(results["scoring"][n_rows][f"{v}_ms"] > 0 for v in results["variants"])
        assert len(results["neighbours"][n_rows]) == 6
        assert all(t > 0 for t in results["neighbours"][n_rows].values())
    for variant in results["variants"]:
        assert results["process"][variant]["rss_ready_mb"] > 0
    assert set(results["service"]) == {"fast", "numpy", "sklearn"}
    assert "| fresh process" in done.stdout
