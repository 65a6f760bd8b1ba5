"""The benchmark's quick mode runs end to end, so the suite cannot rot (no timing asserted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench_smoke import run_smoke


def sane(value: object) -> bool:
    """A measured number: positive and finite."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_smoke_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    results, stdout = run_smoke("bench", out, timeout_s=580)
    assert results["meta"]["mode"] == "smoke"
    assert "failed_sections" not in results
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

    streams = results["streams"]
    for key in ("predict", "streams_memory", "streams_redis"):
        assert streams[key]["requests"] > 0
        assert streams[key]["non_2xx"] == 0
    for key in ("streams_memory", "streams_redis"):  # answers served fail-open, counted
        assert 0 <= streams[key]["degraded_answers"] <= streams[key]["requests"]
    for key in ("ratio_memory", "ratio_redis"):
        assert sane(streams[key])
    for key in ("window_1000", "window_1000_all"):
        assert sane(streams[key]["p50_ms"])
        assert streams[key]["requests"] > 0
    state = streams["state_per_stream"]
    assert state["memory"]["window_array_nbytes"] == 60 * 9 * 8
    assert sane(state["memory"]["heap_per_stream"])
    assert sane(state["redis"]["used_memory_per_stream"])

    bulk = results["bulk"]
    assert sane(bulk["local"]["rows_s_per_core"])
    assert sane(bulk["dask_2_workers"]["ratio_to_local"])
    client = bulk["client_vs_server"]
    assert client["rows_each"] >= 1000
    for key in ("server_batch_rows_s", "client_predict_many_rows_s", "ratio"):
        assert sane(client[key])

    drift = results["drift_overhead"]
    assert len(drift["pairs"]) >= 1
    assert all(sane(p["on_rps"]) and sane(p["off_rps"]) for p in drift["pairs"])
    assert sane(drift["ratio_median"])

    targets = results["targets"]
    assert {t["issue"] for t in targets} == {"10", "11", "12", "13"}
    assert len(targets) == 16
    assert all(isinstance(t["met"], bool) for t in targets)  # every section ran
    assert all(sane(t["value"]) for t in targets)
    assert "| target |" in stdout  # the printed table
    markdown = out.with_suffix(".md").read_text()
    assert markdown.startswith("Run: `python -m bench` (smoke; sections predict, streams")
    assert all(t["target"] in markdown for t in targets)
