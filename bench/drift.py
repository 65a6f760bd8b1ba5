"""``python -m bench.drift [--out FILE]``: what drift tracking costs and what it reports.

In-process, no server:

* the reference's size (JSON bytes) for the default synthetic model's training rows
  (8 features) and for TEP's ``train_normal.csv`` (52 features);
* ``DriftTracker.update`` for 1 row and for 1,000 rows, and ``features()`` (PSI + KS
  of every feature) on a full window; beside them, the time of one ``/predict`` request
  at 64 connections as ``make bench`` last measured it (bench/results/latest.json);
* how often normal data reads as drifted (a fresh 30-day synthetic stream, windows of
  1,000 to 4,000 rows; TEP's ``test_normal.csv``) and how TEP faults show up, with the
  default thresholds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.loading import synthetic_dataset
from anomaly_api.data.synthetic import LABEL_COLUMN, SENSOR_CHANNELS, generate_sensor_data
from anomaly_api.monitoring import DriftReference, DriftTracker, build_drift_reference
from anomaly_api.training.pipeline import fit_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
TEP_DIR = ROOT.parent / "shared" / "datasets" / "tep"
OUT = ROOT / "bench" / "results" / "drift.json"
WINDOW = 1000


def per_call_us(func: Callable[[], object], *, repeat: int = 7, number: int = 200) -> float:
    """Median over ``repeat`` runs of the mean time of one call, in microseconds."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return round(statistics.median(runs), 1)


def reference_size(reference: DriftReference) -> int:
    """Bytes of ``drift_reference.json`` as ``save_drift_reference`` writes it."""
    return len(json.dumps(reference.to_dict(), separators=(",", ":")).encode())


def costs(reference: DriftReference, rows: NDArray[np.float64]) -> dict[str, Any]:
    """Microseconds per update (1 row, 1,000 rows) and per statistics pass."""
    tracker = DriftTracker(reference, window_rows=WINDOW)
    tracker.update(rows[:WINDOW])
    one, batch = rows[:1], rows[:1000]
    return {
        "update_1_row_us": per_call_us(lambda: tracker.update(one), number=2000),
        "update_1_row_prevalidated_us": per_call_us(
            lambda: tracker.update(one, check_finite=False), number=2000
        ),
        "update_1000_rows_us": per_call_us(lambda: tracker.update(batch), number=200),
        "statistics_full_window_us": per_call_us(tracker.features, repeat=5, number=10),
    }


def predict_request_us() -> dict[str, Any] | None:
    """One /predict request's share of a second at 64 connections, from ``make bench``."""
    latest = ROOT / "bench" / "results" / "latest.json"
    if not latest.is_file():
        return None
    rps = json.loads(latest.read_text())["http_predict"]["fast"]["64"]["requests_per_s"]
    return {"source": "bench/results/latest.json", "requests_per_s": rps, "us": round(1e6 / rps)}


def drift_share(
    reference: DriftReference, rows: NDArray[np.float64], step: int, window: int = WINDOW
) -> dict[str, Any]:
    """Slide a window over ``rows``; share of checks (every ``step`` rows) with drift."""
    tracker = DriftTracker(reference, window_rows=window)
    checks = drifted = 0
    counts: dict[str, int] = {}
    for start in range(0, len(rows), step):
        tracker.update(rows[start : start + step])
        if tracker.rows_held < window:
            continue
        found = [f.feature for f in tracker.features() if f.drifted]
        checks += 1
        drifted += bool(found)
        for name in found:
            counts[name] = counts.get(name, 0) + 1
    return {
        "window_rows": window,
        "checks": checks,
        "share_with_any_drifted_feature": round(drifted / checks, 3) if checks else None,
        "checks_per_drifted_feature": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:10]),
    }


def main() -> None:
    """Measure and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    trained = fit_and_evaluate(synthetic_dataset(seed=42), seed=42)
    reference = build_drift_reference(trained.X_fit, list(SENSOR_CHANNELS))
    stream = generate_sensor_data(8640, seed=7)
    normal = stream[stream[LABEL_COLUMN] == 0][list(SENSOR_CHANNELS)].to_numpy(np.float64)
    result: dict[str, Any] = {
        "command": "python -m bench.drift",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_rows": WINDOW,
        "synthetic": {
            "training_rows": int(trained.X_fit.shape[0]),
            "reference_json_bytes": reference_size(reference),
            "costs": costs(reference, normal),
            "predict_request_at_64_connections": predict_request_us(),
            "normal_stream_every_day": [
                drift_share(reference, normal, step=288, window=w) for w in (1000, 2000, 4000)
            ],
        },
    }
    if TEP_DIR.is_dir():
        train = pd.read_csv(TEP_DIR / "train_normal.csv").drop(columns=["is_anomaly", "timestamp"])
        names = [str(c) for c in train.columns]
        tep_ref = build_drift_reference(train.to_numpy(np.float64), names)
        test = pd.read_csv(TEP_DIR / "test_normal.csv").drop(columns=["is_anomaly", "timestamp"])
        test_rows = test.to_numpy(np.float64)

        def drifted_features(rows: NDArray[np.float64]) -> dict[str, Any]:
            tracker = DriftTracker(tep_ref, window_rows=len(rows))
            tracker.update(rows)
            found = tracker.features()
            return {
                "drifted_features": sum(f.drifted for f in found),
                "max_psi": round(max(f.psi for f in found), 3),
                "max_ks_statistic": round(max(f.ks_statistic for f in found), 3),
            }

        faults: dict[str, Any] = {"test_normal rows 0-159": drifted_features(test_rows[:160])}
        for number in (1, 6, 13):
            fault = pd.read_csv(TEP_DIR / f"test_fault{number:02d}.csv")
            rows = fault.drop(columns=["is_anomaly", "timestamp"]).to_numpy(np.float64)
            faults[f"fault{number:02d} rows 0-159 (normal)"] = drifted_features(rows[:160])
            faults[f"fault{number:02d} rows 800-959 (fault)"] = drifted_features(rows[800:])
        result["tep"] = {
            "training_rows": len(train),
            "features": len(names),
            "reference_json_bytes": reference_size(tep_ref),
            "costs": costs(tep_ref, np.vstack([test_rows, test_rows])),
            "test_normal_every_8_hours": drift_share(tep_ref, test_rows, step=160, window=480),
            "windows_of_160_rows_of_52_features": faults,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
