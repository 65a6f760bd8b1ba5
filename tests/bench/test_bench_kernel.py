"""``python -m bench.kernel --smoke`` runs end to end and writes every measurement (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_smoke import run_smoke


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kernel_bench_smoke_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "kernel.json"
    results, stdout = run_smoke("bench.kernel", out, timeout_s=580)
    assert {"c", "numpy", "sklearn"} <= set(results["variants"])
    for n_rows in ("1", "1000"):
        assert all(results["scoring"][n_rows][f"{v}_ms"] > 0 for v in results["variants"])
        assert len(results["neighbours"][n_rows]) == 6
        assert all(t > 0 for t in results["neighbours"][n_rows].values())
    for variant in results["variants"]:
        assert results["process"][variant]["rss_ready_mb"] > 0
    assert set(results["service"]) == {"fast", "numpy", "sklearn"}
    assert "| fresh process" in stdout
