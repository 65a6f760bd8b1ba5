"""``python -m bench.quality_time``: detection quality of the time-aware model.

Three measurements, written to one JSON file (default ``bench/results/quality_time.json``):

* synthetic: seeds 0-9, the ``anomaly-api train --window`` pipeline (chronological
  60/20/20 split, thresholds tuned on the validation part: max F1 with the normal
  floor of ``--normal-floor``); F1, FPR, recall per kind and
  detection delay per kind on the last 20% of each seed, pooled over seeds;
* TEP (``../shared/datasets/tep``): fitted on ``train_normal.csv`` only; the threshold
  is calibrated on ``test_normal.csv`` (normal data from another run, never fitted on)
  to flag ``--tep-fpr`` of it; detection rate of every fault (rows 160-959), false-alarm
  rate on rows 0-159 of the 21 fault files (not used for anything else), first alarm;
* NAB (``../shared/datasets/nab``, univariate): fitted on the first 10% of each series
  (outside the labelled windows), threshold calibrated on the next 5% to flag 1%;
  recall of the labelled windows (a window counts when one of its rows is flagged) and
  the FPR of the rows outside windows, both on the rest of the series.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.detection.time_aware import DEFAULT_MEAN_GATE
from anomaly_api.detection.windows import DEFAULT_FEATURES
from anomaly_api.training.time_aware import (
    DEFAULT_NORMAL_FLOOR,
    TimeAwareSettings,
    fit_time_aware,
    new_time_aware_model,
    normal_fpr_offsets,
)
from bench.report import save_report

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / ".." / "shared" / "datasets"
FAULT_START = 160
EXCLUDED_FAULTS = (3, 9, 15)


def synthetic(seeds: Iterable[int], settings: TimeAwareSettings) -> dict[str, Any]:
    """Per seed and pooled: F1, FPR, recall and delay per kind."""
    per_seed: dict[str, Any] = {}
    flagged_by_kind: dict[str, list[float]] = {}
    delays: dict[str, list[float]] = {}
    events: dict[str, list[float]] = {}
    for seed in seeds:
        ts = synthetic_timeseries(seed=seed)
        trained = fit_time_aware(ts, TimeAwareSettings(**{**settings.__dict__, "seed": seed}))
        test = trained.metrics["test"]
        per_seed[str(seed)] = test
        kinds = ts.data.kinds
        assert kinds is not None
        part = trained.parts == 2
        out = trained.model.score_frame(ts.data.X[part], ts.segments[part])
        for kind in sorted(set(kinds[part].tolist()) - {"normal"}):
            flagged_by_kind.setdefault(kind, []).extend(
                out.is_anomaly[kinds[part] == kind].astype(float).tolist()
            )
        for kind, d in test["delay"].items():
            events.setdefault(kind, []).append(d["events"] * d["detected"])
            events.setdefault(f"{kind}:all", []).append(d["events"])
            if d["mean_delay"] is not None:
                delays.setdefault(kind, []).append(d["mean_delay"])
    f1 = [s["f1"] for s in per_seed.values()]
    fpr = [s["fpr"] for s in per_seed.values()]
    return {
        "settings": settings.__dict__ | {"features": list(settings.features)},
        "f1_mean": float(np.mean(f1)),
        "f1_min": float(np.min(f1)),
        "fpr_mean": float(np.mean(fpr)),
        "fpr_max": float(np.max(fpr)),
        "recall_per_kind_pooled": {k: float(np.mean(v)) for k, v in flagged_by_kind.items()},
        "events_detected_per_kind": {
            k: float(np.sum(events[k]) / max(np.sum(events[f"{k}:all"]), 1)) for k in delays
        },
        "mean_delay_readings_per_kind": {k: float(np.mean(v)) for k, v in delays.items()},
        "per_seed": per_seed,
    }


def _read(path: Path) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    frame = pd.read_csv(path)
    names = [c for c in frame.columns if c not in ("timestamp", "is_anomaly")]
    return frame[names].to_numpy(np.float64), frame["is_anomaly"].to_numpy(np.int64), names


def tep(
    settings: TimeAwareSettings, target_fpr: float, datasets: Path = DATASETS
) -> dict[str, Any]:
    """Fit on train_normal, calibrate on test_normal, measure every fault file."""
    folder = datasets / "tep"
    X_train, _, names = _read(folder / "train_normal.csv")
    model = new_time_aware_model(settings, relations=settings.relations).fit(
        X_train, channels=names, median_interval=180.0
    )
    X_cal, _, _ = _read(folder / "test_normal.csv")
    _, z, valid = model.window_z(X_cal)
    cal_scores = model.detector_scores(z[valid])
    model.detector_.set_offsets(normal_fpr_offsets(cal_scores, target_fpr))
    faults: dict[str, Any] = {}
    false_alarms: list[NDArray[np.bool_]] = []
    for number in range(1, 22):
        X, y, _ = _read(folder / f"test_fault{number:02d}.csv")
        out = model.score_frame(X)
        flagged = out.is_anomaly
        # rows warming up (the first window - 1) are excluded from the false-alarm rate
        false_alarms.append(flagged[:FAULT_START][~out.warming_up[:FAULT_START]])
        after = np.flatnonzero(flagged[FAULT_START:])
        faults[str(number)] = {
            "detection_rate": float(flagged[y == 1].mean()),
            "false_alarm_rate": float(flagged[:FAULT_START][~out.warming_up[:FAULT_START]].mean()),
            "first_alarm_readings": int(after[0]) if len(after) else None,
        }
    kept = [str(n) for n in range(1, 22) if n not in EXCLUDED_FAULTS]
    rates = [faults[k]["detection_rate"] for k in kept]
    delays = [faults[k]["first_alarm_readings"] for k in kept]
    return {
        "protocol": (
            "fit on train_normal.csv; threshold = flags "
            f"{target_fpr:g} of test_normal.csv (never fitted on); FAR on rows 0-159 of the "
            "21 fault files after the warm-up rows"
        ),
        "window": settings.window,
        "features": list(model.kinds_),
        "mean_detection_18": float(np.mean(rates)),
        "mean_detection_21": float(np.mean([f["detection_rate"] for f in faults.values()])),
        "false_alarm_rate": float(np.concatenate(false_alarms).mean()),
        "median_first_alarm_readings_18": float(
            np.median([d if d is not None else 800 for d in delays])
        ),
        "faults": faults,
    }


def _windows(y: NDArray[np.int64]) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], y, [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def nab(settings: TimeAwareSettings, datasets: Path = DATASETS) -> dict[str, Any]:
    """Per series: window recall and FPR of the rows outside windows."""
    results: dict[str, Any] = {}
    for path in sorted((datasets / "nab").glob("*.csv")):
        X, y, names = _read(path)
        n = len(y)
        fit_end, cal_end = int(0.10 * n), int(0.15 * n)
        fit_rows = np.zeros(n, dtype=np.bool_)
        fit_rows[:fit_end] = y[:fit_end] == 0
        model = new_time_aware_model(settings).fit(
            X[:fit_end], fit_rows=fit_rows[:fit_end], channels=names
        )
        _, z, valid = model.window_z(X)
        cal = np.zeros(n, dtype=np.bool_)
        cal[fit_end:cal_end] = True
        cal &= valid & (y == 0)
        scores = model.detector_scores(z[cal])
        model.detector_.set_offsets(normal_fpr_offsets(scores, 0.01))
        out = model.score_frame(X)
        flagged = out.is_anomaly
        rest = np.arange(n) >= cal_end
        windows = [(a, b) for a, b in _windows(y) if a >= cal_end]
        hit = [bool(flagged[a:b].any()) for a, b in windows]
        first = [int(np.flatnonzero(flagged[a:b])[0]) for a, b in windows if flagged[a:b].any()]
        results[path.stem] = {
            "rows": n,
            "windows_evaluated": len(windows),
            "window_recall": float(np.mean(hit)) if hit else None,
            "first_alarm_in_window_readings": first,
            "window_lengths": [int(b - a) for a, b in windows],
            "fpr_outside_windows": float(flagged[rest & (y == 0)].mean()),
            "row_recall": float(flagged[rest & (y == 1)].mean()),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "quality_time.json"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--tep-window", type=int, default=30)
    parser.add_argument("--tep-fpr", type=float, default=0.02)
    parser.add_argument("--features", default=",".join(DEFAULT_FEATURES))
    parser.add_argument("--tep-features", default=None)
    parser.add_argument("--detector", default="top4_z")
    parser.add_argument("--target-fpr", type=float, default=None)
    parser.add_argument(
        "--mean-gate", default=str(DEFAULT_MEAN_GATE), help="a number, or 'none' for no gate"
    )
    parser.add_argument(
        "--normal-floor",
        default=str(DEFAULT_NORMAL_FLOOR),
        help="max-F1 thresholds at most this many robust sd below the validation normals' "
        "median score; 'none' for plain max F1",
    )
    parser.add_argument("--only", choices=("synthetic", "tep", "nab"), default=None)
    parser.add_argument(
        "--datasets", type=Path, default=DATASETS, help="folder holding tep/ and nab/"
    )
    args = parser.parse_args(argv)
    features = tuple(args.features.split(","))
    base = TimeAwareSettings(
        window=args.window,
        short=args.short,
        features=features,
        detector=args.detector,
        target_fpr=args.target_fpr,
        mean_gate=None if args.mean_gate.lower() == "none" else float(args.mean_gate),
        normal_floor=None if args.normal_floor.lower() == "none" else float(args.normal_floor),
    )
    started = time.perf_counter()
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {"command": " ".join(["python -m bench.quality_time", *given])}
    if args.only in (None, "synthetic"):
        report["synthetic"] = synthetic(range(args.first_seed, args.first_seed + args.seeds), base)
        s = report["synthetic"]
        print(f"synthetic: F1 {s['f1_mean']:.3f} (min {s['f1_min']:.3f}), FPR {s['fpr_mean']:.4f}")
        print(f"  recall per kind {json.dumps(s['recall_per_kind_pooled'])}")
        print(f"  delay per kind {json.dumps(s['mean_delay_readings_per_kind'])}")
    if args.only in (None, "tep"):
        tep_features = tuple(args.tep_features.split(",")) if args.tep_features else features
        tep_settings = TimeAwareSettings(
            window=args.tep_window,
            features=tep_features,
            detector=args.detector,
            mean_gate=base.mean_gate,
        )
        report["tep"] = tep(tep_settings, args.tep_fpr, args.datasets)
        t = report["tep"]
        print(
            f"TEP: mean detection (18 faults) {t['mean_detection_18']:.3f}, "
            f"FAR {t['false_alarm_rate']:.3f}"
        )
    if args.only in (None, "nab"):
        report["nab"] = nab(base, args.datasets)
        for name, r in report["nab"].items():
            print(
                f"NAB {name}: window recall {r['window_recall']}, "
                f"FPR {r['fpr_outside_windows']:.4f}"
            )
    report["seconds"] = time.perf_counter() - started
    save_report(args.out, report)


if __name__ == "__main__":
    main()
