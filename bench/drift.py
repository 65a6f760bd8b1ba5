"""Section ``drift``: what drift tracking costs ``/predict`` (throughput at 64 connections,
tracking on vs off) and on its own, and what it reports on normal data and TEP faults."""

from __future__ import annotations

import json
import statistics
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from anomaly_api.monitoring import DriftReference, DriftTracker, build_drift_reference
from bench.data import TEP_FAULT_ONSET, tep_available, tep_frame
from bench.load import run_wrk
from bench.report import ratio
from bench.servers import service_env, service_server
from bench.timing import median_ms

if TYPE_CHECKING:
    from bench.__main__ import Context

CONNECTIONS = 64
WINDOW = 1000


def overhead(ctx: Context) -> dict[str, Any]:
    """Drift on against off, two servers, wrk in interleaved pairs; the ratios' median."""
    pairs, seconds = ctx.size(2, 6), ctx.size(1.0, 8.0)
    base = service_env(ctx.artifacts, "fast")
    runs: list[dict[str, float]] = []
    with (
        service_server("drift-on", {**base, "ANOMALY_DRIFT_ENABLED": "true"}) as on,
        service_server("drift-off", {**base, "ANOMALY_DRIFT_ENABLED": "false"}) as off,
    ):
        for server in (on, off):  # warm-up: first-time work out of the runs
            run_wrk(server.port, "/predict", CONNECTIONS, 1.0, workdir=ctx.workdir)
        for i in range(pairs):
            rps: dict[str, float] = {}
            for server in (on, off) if i % 2 == 0 else (off, on):
                result = run_wrk(server.port, "/predict", CONNECTIONS, seconds, workdir=ctx.workdir)
                if result["non_2xx"]:
                    raise RuntimeError(f"{server.name}: {result['non_2xx']} non-2xx answers")
                rps[server.name] = result["requests_per_s"]
            on_rps, off_rps = rps["drift-on"], rps["drift-off"]
            runs.append({"on_rps": on_rps, "off_rps": off_rps, "ratio": ratio(on_rps, off_rps)})
    ratios = [r["ratio"] for r in runs]
    return {"drift_overhead": {
        "connections": CONNECTIONS, "seconds_per_run": seconds, "pairs": runs,
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }}  # fmt: skip


def costs(reference: DriftReference, rows: NDArray[np.float64], smoke: bool) -> dict[str, Any]:
    """µs per update and per statistics pass; the reference's JSON size."""
    tracker = DriftTracker(reference, window_rows=WINDOW)
    tracker.update(rows[:WINDOW])
    one, batch = rows[:1], rows[:1000]
    n = 50 if smoke else 2000
    return {
        "reference_json_bytes": len(json.dumps(reference.to_dict(), separators=(",", ":"))),
        "update_1_row_us": median_ms(lambda: tracker.update(one), n) * 1e3,
        "update_1000_rows_us": median_ms(lambda: tracker.update(batch), n // 10) * 1e3,
        "statistics_full_window_us": median_ms(tracker.features, n // 100) * 1e3,
    }


def drift_share(
    reference: DriftReference, rows: NDArray[np.float64], step: int, window: int
) -> dict[str, Any]:
    """Slide a window over ``rows``; the share of checks (every ``step`` rows) with a
    drifted feature."""
    tracker = DriftTracker(reference, window_rows=window)
    checks = drifted = 0
    for start in range(0, len(rows), step):
        tracker.update(rows[start : start + step])
        if tracker.rows_held >= window:
            checks += 1
            drifted += any(f.drifted for f in tracker.features())
    return {"window_rows": window, "checks": checks,
            "share_with_any_drifted_feature": drifted / checks if checks else None}  # fmt: skip


def tracker(ctx: Context) -> dict[str, Any]:
    """The tracker in process on the synthetic model's rows and on TEP."""
    from anomaly_api.data.loading import synthetic_dataset
    from anomaly_api.data.synthetic import LABEL_COLUMN, SENSOR_CHANNELS, generate_sensor_data
    from anomaly_api.training.pipeline import fit_and_evaluate

    trained = fit_and_evaluate(synthetic_dataset(seed=42), seed=42)
    reference = build_drift_reference(trained.X_fit, list(SENSOR_CHANNELS))
    stream = generate_sensor_data(ctx.size(2000, 8640), seed=7)
    normal = stream[stream[LABEL_COLUMN] == 0][list(SENSOR_CHANNELS)].to_numpy(np.float64)
    out: dict[str, Any] = {"synthetic": {
        **costs(reference, normal, ctx.smoke),
        "normal_stream_every_day": [drift_share(reference, normal, 288, w)
                                    for w in ctx.size((1000,), (1000, 2000, 4000))],
    }}  # fmt: skip
    if tep_available():
        train, _, names = tep_frame("train_normal")
        tep_ref = build_drift_reference(train, names)
        test = tep_frame("test_normal")[0]
        windows: dict[str, Any] = {}
        for number in ctx.size((1,), (1, 6, 13)):
            rows = tep_frame(f"test_fault{number:02d}")[0]
            for label, part in (("normal", rows[:TEP_FAULT_ONSET]), ("fault", rows[800:])):
                check = DriftTracker(tep_ref, window_rows=len(part))
                check.update(part)
                found = check.features()
                windows[f"fault{number:02d} {label}"] = {
                    "drifted_features": sum(f.drifted for f in found),
                    "max_psi": max(f.psi for f in found),
                }
        out["tep"] = {
            **costs(tep_ref, np.vstack([test, test]), ctx.smoke),
            "test_normal_every_8_hours": drift_share(tep_ref, test, 160, 480),
            "windows_of_160_rows": windows,
        }
    return {"drift_tracker": out}


PARTS = {"overhead": overhead, "tracker": tracker}
