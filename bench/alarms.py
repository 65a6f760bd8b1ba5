"""``python -m bench.alarms [--out FILE]``: alarms per day at normal operation vs detection delay.

For a few alarm policies (``anomaly_api.monitoring.AlarmPolicy``), on two sources:

* **synthetic**: the default model (``training.pipeline.fit_and_evaluate`` on
  ``synthetic_dataset(seed=42)``) scores one fresh 30-day stream of 5-minute readings
  (``generate_sensor_data(8640, seed=7)``) with its injected anomaly segments;
* **TEP** (``../shared/datasets/tep``): the default ensemble fitted on ``train_normal.csv``
  (no labels: thresholds from contamination 0.05), then the same model with its
  thresholds moved to contamination 0.01 by ``training.tuning.retune`` (no refit).
  Streams: ``test_normal.csv`` and each ``test_faultNN.csv`` (fault from row 160),
  3-minute readings, one alarm state per file.

Normal operation = rows labelled normal; a false alarm is an alarm raised on one. A
segment (synthetic) or fault (TEP) is detected when an alarm falls inside it; the delay
is from its first row to that alarm. Takes about a minute; seeded, so reproducible.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.anomalies import NORMAL_KIND
from anomaly_api.data.loading import dataset_from_frame, synthetic_dataset
from anomaly_api.data.synthetic import (
    KIND_COLUMN,
    LABEL_COLUMN,
    SENSOR_CHANNELS,
    generate_sensor_data,
)
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.monitoring import AlarmPolicy, AlarmState
from anomaly_api.training.pipeline import fit_and_evaluate
from anomaly_api.training.tuning import Contamination, ScoreReference, retune

ROOT = Path(__file__).resolve().parents[1]
TEP_DIR = ROOT.parent / "shared" / "datasets" / "tep"
OUT = ROOT / "bench" / "results" / "alarms.json"
TEP_FAULT_START = 160
HARD_TEP_FAULTS = (3, 9, 15)

POLICIES: dict[str, AlarmPolicy] = {
    "every anomaly (k=1)": AlarmPolicy(k=1, window=1, cooldown=0),
    "3 of 5, cool-down 12": AlarmPolicy(k=3, window=5, cooldown=12),
    "6 of 10, cool-down 12": AlarmPolicy(k=6, window=10, cooldown=12),
    "10 of 20, cool-down 12": AlarmPolicy(k=10, window=20, cooldown=12),
}


@dataclass(frozen=True)
class Stream:
    """One stream's decisions and labels, oldest first."""

    name: str
    flagged: NDArray[np.bool_]
    labels: NDArray[np.int64]
    segments: list[tuple[int, int, str]]
    """(first row, last row, kind) of each anomalous stretch."""


def segments_of(kinds: NDArray[np.str_]) -> list[tuple[int, int, str]]:
    """Contiguous runs of one non-normal kind."""
    out: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            if kinds[start] != NORMAL_KIND:
                out.append((start, i - 1, str(kinds[start])))
            start = i
    return out


SUSTAINED_ROWS = 5
"""Segments at least this long count as sustained (single-row spikes are not)."""


def evaluate(streams: list[Stream], policy: AlarmPolicy, minutes: float) -> dict[str, Any]:
    """False alarms per day of normal rows, and per segment whether and when it alarmed."""
    false_alarms = normal_rows = 0
    found: list[tuple[str, int, float | None]] = []  # kind, length, delay
    for stream in streams:
        alarms, _ = policy.evaluate(AlarmState(), stream.flagged)
        normal = stream.labels == 0
        false_alarms += int(np.sum(alarms & normal))
        normal_rows += int(np.sum(normal))
        for first, last, kind in stream.segments:
            hits = np.flatnonzero(alarms[first : last + 1])
            delay = float(hits[0]) * minutes if hits.size else None
            found.append((kind, last - first + 1, delay))
    days = normal_rows * minutes / 1440.0

    def summary(rows: list[tuple[str, int, float | None]]) -> dict[str, Any]:
        delays = [d for _, _, d in rows if d is not None]
        return {
            "segments": len(rows),
            "detected_share": round(len(delays) / len(rows), 3) if rows else None,
            "delay_minutes_median": round(statistics.median(delays), 1) if delays else None,
            "delay_minutes_mean": round(statistics.fmean(delays), 1) if delays else None,
        }

    kinds = sorted({kind for kind, _, _ in found})
    return {
        "policy": policy.to_dict(),
        "normal_days": round(days, 2),
        "false_alarms": false_alarms,
        "false_alarms_per_day": round(false_alarms / days, 2),
        **summary(found),
        "sustained": summary([f for f in found if f[1] >= SUSTAINED_ROWS]),
        "by_kind": {kind: summary([f for f in found if f[0] == kind]) for kind in kinds},
    }


def synthetic_streams() -> tuple[list[Stream], dict[str, Any]]:
    """The default model and one fresh 30-day synthetic stream."""
    trained = fit_and_evaluate(synthetic_dataset(seed=42), seed=42)
    frame = generate_sensor_data(8640, seed=7)
    X = frame[list(SENSOR_CHANNELS)].to_numpy(dtype=np.float64)
    flagged = trained.model.explain(X).is_anomaly
    labels = frame[LABEL_COLUMN].to_numpy(dtype=np.int64)
    kinds = frame[KIND_COLUMN].astype(str).to_numpy(dtype=np.str_)
    stream = Stream("synthetic seed=7", flagged, labels, segments_of(kinds))
    info = {
        "model": "default (fit_and_evaluate(synthetic_dataset(seed=42)))",
        "stream": "generate_sensor_data(8640, seed=7): 30 days of 5-minute readings",
        "rows": len(frame),
        "flagged_share_on_normal_rows": round(float(flagged[labels == 0].mean()), 4),
        "anomalous_rows": int(labels.sum()),
    }
    return [stream], info


def training_scores(model: AnomalyEnsemble, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each detector's scores on its training rows, as ``fit`` computed them."""
    return np.column_stack(
        [
            model.isolation_forest_.score_samples(X),
            model.local_outlier_factor_.negative_outlier_factor_,
            model.zscore_.score_samples(X),
        ]
    )


def tep_streams(model: AnomalyEnsemble) -> list[Stream]:
    """test_normal and the 21 fault files, scored by ``model``."""
    streams = []
    for path in [TEP_DIR / "test_normal.csv", *sorted(TEP_DIR.glob("test_fault*.csv"))]:
        frame = pd.read_csv(path)
        labels = frame["is_anomaly"].to_numpy(dtype=np.int64)
        X = frame.drop(columns=["timestamp", "is_anomaly"]).to_numpy(dtype=np.float64)
        segments = [] if labels.sum() == 0 else [(TEP_FAULT_START, len(frame) - 1, path.stem)]
        streams.append(Stream(path.stem, model.explain(X).is_anomaly, labels, segments))
    return streams


def tep_results() -> dict[str, Any]:
    """Alarms on TEP with the default thresholds and with retuned ones."""
    frame = pd.read_csv(TEP_DIR / "train_normal.csv").drop(columns=["is_anomaly"])
    dataset = dataset_from_frame(frame, source="tep/train_normal.csv")
    trained = fit_and_evaluate(dataset, seed=42)
    model = trained.model
    reference = ScoreReference(
        ("isolation_forest", "local_outlier_factor", "zscore"),
        training_scores(model, dataset.X),
    )
    out: dict[str, Any] = {"train_rows": dataset.n_rows, "features": len(dataset.feature_names)}
    for label, contamination in (("contamination 0.05 (default)", None), ("retuned to 0.01", 0.01)):
        if contamination is not None:
            model.set_offsets(retune(reference, model.offsets_, Contamination(contamination)))
        streams = tep_streams(model)
        normal = np.concatenate([s.flagged[s.labels == 0] for s in streams])
        easy = [s for s in streams if not any(s.name.endswith(f"{n:02d}") for n in HARD_TEP_FAULTS)]
        out[label] = {
            "thresholds": [round(float(t), 5) for t in model.offsets_],
            "flagged_share_on_normal_rows": round(float(normal.mean()), 4),
            "policies": {
                name: {
                    **evaluate(streams, policy, minutes=3.0),
                    "without_faults_3_9_15": {
                        key: evaluate(easy, policy, 3.0)[key]
                        for key in ("detected_share", "delay_minutes_median", "delay_minutes_mean")
                    },
                }
                for name, policy in POLICIES.items()
            },
        }
    return out


def main() -> None:
    """Run both measurements and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    streams, info = synthetic_streams()
    synthetic = {
        **info,
        "policies": {name: evaluate(streams, p, minutes=5.0) for name, p in POLICIES.items()},
    }
    result: dict[str, Any] = {
        "command": "python -m bench.alarms",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "synthetic": synthetic,
        "tep": tep_results() if TEP_DIR.is_dir() else None,
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in result["synthetic"]["policies"].items():
        sus = row["sustained"]
        print(
            f"synthetic {name:24} false/day {row['false_alarms_per_day']:6.2f}  sustained "
            f"detected {sus['detected_share']} median delay {sus['delay_minutes_median']} min"
        )
    if result["tep"] is not None:
        for label in ("contamination 0.05 (default)", "retuned to 0.01"):
            for name, row in result["tep"][label]["policies"].items():
                easy = row["without_faults_3_9_15"]
                print(
                    f"TEP {label[:16]:16} {name:24} false/day {row['false_alarms_per_day']:6.2f}"
                    f"  median delay {row['delay_minutes_median']} min"
                    f" (without 3/9/15: {easy['delay_minutes_median']} min)"
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
