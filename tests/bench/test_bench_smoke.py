"""The benchmark's quick pass runs every section and part end to end, so no part of the suite
can rot (no timing asserted)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from bench.__main__ import SECTIONS, parts_of
from bench.data import DATASETS, tep_available
from bench.nab import CORPUS as NAB_CORPUS
from bench.report import TARGETS
from bench_smoke import run_smoke


def sane(value: object) -> bool:
    """A measured number: positive and finite."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_bench_smoke_runs_every_part(tmp_path: Path) -> None:
    if os.environ.get("CI") and not tep_available():
        pytest.fail(f"{DATASETS} is missing; CI must provide ../shared/datasets")
    out = tmp_path / "smoke.json"
    results, stdout = run_smoke([], out, timeout_s=1180)
    meta = results["meta"]
    assert meta["mode"] == "smoke"
    assert "failed_sections" not in results
    assert meta["parts"] == [f"{s}.{p}" for s in SECTIONS for p in parts_of(s)]

    for name in ("bare", "fast", "numpy", "sklearn"):
        runs = results["http_predict"][name]
        assert set(runs) == {"1", "16", "64"}
        for run in runs.values():
            assert run["requests"] > 0
            assert run["non_2xx"] == 0  # every answer was a 200
            assert 0 < run["p50_ms"] <= run["p99_ms"]
    assert set(results["model_scoring"]) == {"1", "100", "1000"}
    assert {"fast", "numpy", "sklearn", "split"} <= set(results["batch"])
    for backend in ("in-process", "redis"):
        assert all(run["non_2xx"] == 0 for run in results["cache"][backend].values())
    assert all(sane(f["start_to_ready_s"]) for f in results["servers"].values())
    assert "fast_vs_bare_rps_c64" in results["ratios"]

    scaling = results["scaling"]
    for loop in ("asyncio", "uvloop"):
        for runs in scaling["loops"][loop].values():
            assert set(runs) == {"16", "64", "128", "256"}
            assert all(sane(run["requests_per_s"]) for run in runs.values())
            assert all(run["max_ms"] >= run["p99_ms"] for run in runs.values())
    two = scaling["workers_c64"]
    assert all(two[name]["errors"] == 0 for name in ("bare_1", "bare_2", "ours_1", "ours_2"))
    assert sane(two["ours_2_vs_bare_2"])
    assert sane(two["ours_2_vs_ours_1"])
    assert sane(two["bare_2_vs_bare_1"])
    streams = results["streams"]
    for key in ("predict", "streams_memory", "streams_redis"):
        assert streams[key]["requests"] > 0
        assert streams[key]["non_2xx"] == 0
    for key in ("streams_memory", "streams_redis"):  # answers served fail-open, counted
        assert 0 <= streams[key]["degraded_answers"] <= streams[key]["requests"]
    assert sane(streams["window_1000"]["p50_ms"])
    assert sane(streams["watch"]["mqtt_readings_per_s"])
    assert sane(streams["watch"]["parsed_and_scored_per_s"])
    watched = streams["watch_prometheus"]
    assert watched["readings_per_run"] >= 15 * watched["streams"]  # >= 15 steps of 1 s each
    assert sane(watched["cpu_s_per_run"])
    assert sane(streams["adaptation_cost"])
    state = streams["state_per_stream"]
    assert state["memory"]["window_array_nbytes"] == 60 * 9 * 8
    assert state["memory"]["heap_per_stream"] > state["memory"]["window_array_nbytes"]
    assert state["redis"]["window_value_bytes"] == 29 + len("bench-model-1") + 60 * 9 * 8
    assert sane(state["redis"]["used_memory_per_stream"])

    fleet = results["fleet"]
    assert fleet["cold_requests"] == fleet["models"] * 3 // 2  # every model, then half again
    assert 1 < fleet["loaded_after"] < fleet["models"]  # the budget held some, not all
    assert fleet["open_fds_before_after"][1] <= fleet["open_fds_before_after"][0] + 2
    assert all(sane(fleet[k]) for k in ("cold_first_request_p50_ms", "models_after_ms"))

    bulk = results["bulk"]
    assert sane(bulk["local"]["rows_s_per_core"])
    assert sane(bulk["dask_2_workers"]["ratio_to_local"])
    assert sane(bulk["cli"]["peak_rss_mb"])
    assert "scored 10,000 rows" in bulk["cli"]["summary"]
    assert sane(bulk["client_vs_server"]["ratio"])
    assert sane(bulk["client_vs_server"]["client_cpu_ms_per_1000_rows"])
    drift = results["drift_overhead"]
    assert len(drift["pairs"]) == 2
    assert sane(drift["ratio_median"])
    assert sane(results["drift_tracker"]["synthetic"]["update_1_row_us"])

    neighbours = results["kernel"]["neighbours"]
    assert all(len(row) == 6 and all(sane(t) for t in row.values()) for row in neighbours.values())
    cost = results["cost"]
    assert len(cost["request"]["predict_1_row_us"]) == 5
    batch = cost["request"]["predict_batch_1000_rows_us"]
    assert sane(batch["service, cache hits, through uvicorn"])
    assert sane(batch["the kernel alone on the same rows"])
    assert cost["instructions_per_request"] == {"/predict": None}  # no callgrind in a smoke run

    quality = results["quality"]
    assert 0 <= quality["pointwise"]["synthetic"]["mean"]["roc_auc"] <= 1
    assert 0 <= quality["time"]["synthetic"]["f1_mean"] <= 1
    assert 0 <= quality["fpr"]["synthetic"]["fpr_mean"] <= 1
    assert 0 <= quality["feedback"]["total"]["after"]["false_anomaly_rate"] <= 1
    nab = quality["nab"]
    if not (NAB_CORPUS / "run.py").is_file():
        assert "skipped" in nab
    else:  # the corpus cut to two series, scored by NAB's own scorer
        assert nab["series"] == 2
        assert {"standard", "reward_low_FP_rate", "reward_low_FN_rate"} <= set(nab)
        assert 0 < nab["numenta_standard_rescored"] <= 100
    if tep_available():
        assert 0 <= quality["fpr"]["tep"]["false_alarm_rate"] <= 1
        for path in ("stream", "stream_adapted"):  # the stream path, adaptation off and on
            assert 0 <= quality["fpr"]["tep"][path]["mean_detection_18"] <= 1
        fault4 = quality["pointwise"]["tep"]["faults"]["4"]  # a textbook easy fault
        assert fault4["detection_rate"] > 0.9
        assert fault4["most_frequent_top1"] in fault4["known_variables"]

    targets = results["targets"]
    assert len(targets) == len(TARGETS)
    assert all(isinstance(t["met"], bool) for t in targets)
    markdown = out.with_suffix(".md").read_text()
    assert markdown.startswith("Run: `python -m bench` (smoke; sections predict.inprocess")
    assert all(t["target"] in markdown for t in targets)
    assert "| kernel | measured |" in markdown
    assert "| target |" in stdout
