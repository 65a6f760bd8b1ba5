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
    hot = results["hot_path"]
    assert {"stdlib_json_ms", "orjson_ms"} <= set(hot["json_parse_batch"])
    assert hot["single_row_while_batches_in_thread"]["batches_done"] > 0
    assert "fast_vs_bare_rps_c64" in results["ratios"]
    probed = results["http_predict"]["fast"]["64"]  # a smoke run serves the probed app
    assert probed["lag_probe"]["loop_lag"]["count"] > 0
    assert probed["in_app_latency"]["requests"] > 0

    streams = results["streams"]
    for key in ("predict", "streams_memory", "streams_redis"):
        assert streams[key]["requests"] > 0
        assert streams[key]["non_2xx"] == 0
    for key in ("streams_memory", "streams_redis"):  # answers served fail-open, counted
        assert 0 <= streams[key]["degraded_answers"] <= streams[key]["requests"]
    assert sane(streams["window_1000"]["p50_ms"])
    assert sane(streams["adaptation_cost"])
    state = streams["state_per_stream"]
    assert state["memory"]["window_array_nbytes"] == 60 * 9 * 8
    assert state["memory"]["heap_per_stream"] > state["memory"]["window_array_nbytes"]
    assert state["redis"]["window_value_bytes"] == 29 + len("bench-model-1") + 60 * 9 * 8
    assert sane(state["redis"]["used_memory_per_stream"])
    for store in ("memory", "redis"):
        numbers = streams["stores"][store]
        assert sane(numbers["append_with_alarms_us"])
        assert sane(numbers["append_with_adaptation_events_us"])
        assert sane(numbers["appends_per_s_64_tasks"])
        assert numbers["alarms_not_stored"] == 0  # one caller: every alarm state is stored

    bulk = results["bulk"]
    assert sane(bulk["local"]["rows_s_per_core"])
    assert sane(bulk["dask_2_workers"]["ratio_to_local"])
    assert sane(bulk["cli"]["peak_rss_mb"])
    assert "scored 10,000 rows" in bulk["cli"]["summary"]
    assert sane(bulk["client_vs_server"]["ratio"])
    drift = results["drift_overhead"]
    assert len(drift["pairs"]) == 2
    assert sane(drift["ratio_median"])
    assert sane(results["drift_tracker"]["synthetic"]["update_1_row_us"])

    kernel = results["kernel"]
    assert all(sane(t) for row in kernel["scoring"].values() for t in row.values())
    assert all(len(row) == 6 for row in kernel["neighbours"].values())
    assert set(kernel["process"]) == {"c", "numpy", "sklearn"}
    cost = results["cost"]
    assert len(cost["request"]["predict_1_row_us"]) == 4
    assert sane(cost["batch"]["miss_ms"])
    assert sane(cost["batch"]["hit_ms"])
    assert sane(cost["client"]["predict_many_per_1000_ms"])
    assert sane(cost["stream"]["redis"]["append_us"])
    assert sane(cost["stream"]["score_window_us"])
    assert all(sane(row["contributions_us"]) for row in cost["explain"].values())
    assert cost["instructions_per_request"] == {"/predict": None}  # no callgrind in a smoke run

    quality = results["quality"]
    assert 0 <= quality["pointwise"]["synthetic"]["mean"]["roc_auc"] <= 1
    assert 0 <= quality["time"]["synthetic"]["f1_mean"] <= 1
    assert quality["alarms"]["synthetic"]["policies"]
    assert 0 <= quality["fpr"]["synthetic"]["fpr_mean"] <= 1
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
    assert len(targets) == 16
    assert all(isinstance(t["met"], bool) for t in targets)
    markdown = out.with_suffix(".md").read_text()
    assert markdown.startswith("Run: `python -m bench` (smoke; sections predict.inprocess")
    assert all(t["target"] in markdown for t in targets)
    assert "| kernel | measured |" in markdown
    assert "| target |" in stdout
