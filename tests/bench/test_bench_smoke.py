"""The benchmark's quick mode runs end to end, so the suite cannot rot (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_smoke_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["meta"]["mode"] == "smoke"
    for name in ("bare", "fast", "numpy", "sklearn"):
        runs = results["http_predict"][name]
        assert set(runs) == {"1", "16", "64"}
        for run in runs.values():
            assert run["requests"] > 0
            assert run["non_2xx"] == 0  # every answer was a 200 (a slow floor may time out)
            assert 0 < run["p50_ms"] <= run["p99_ms"]
    assert set(results["model_scoring"]) == {"1", "100", "1000"}
    assert {"fast", "numpy", "sklearn", "split"} <= set(results["batch"])
    assert {"parse_ms", "validate_ms", "to_matrix_ms", "score_fast_ms"} <= set(
        results["batch"]["split"]
    )
    for backend in ("in-process", "redis"):
        assert set(results["cache"][backend]) == {"miss", "hit"}
        assert all(run["non_2xx"] == 0 for run in results["cache"][backend].values())
    for facts in results["servers"].values():
        assert facts["rss_after_load_mb"] > 0
        assert facts["start_to_ready_s"] > 0
    hot = results["hot_path"]
    assert {"miss_us", "hit_us", "score_only_us", "batch_predict_miss_ms"} <= set(
        hot["predictor_one_row"]
    )
    assert {"stdlib_json_ms", "orjson_ms"} <= set(hot["json_parse_batch"])
    for key in ("single_rows_in_thread_c64", "single_row_while_batches_on_loop"):
        assert hot[key]["non_2xx"] == 0
    assert hot["single_row_while_batches_in_thread"]["batches_done"] > 0
    assert "fast_vs_bare_rps_c64" in results["ratios"]
    assert len(results["targets"]) == 7
    assert all(isinstance(t["met"], bool) for t in results["targets"])
    assert "| target |" in done.stdout  # the printed table
