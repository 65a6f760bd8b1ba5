"""``python -m bench.fpr_user_path``: the false-alarm rate a user gets, as they would train.

* TEP (``../shared/datasets/tep``): ``anomaly-api train --data train_normal.csv
  --timestamp-column timestamp --window 30 --target-fpr 0.02`` (the label column, all
  normal, is dropped as a user without labels would), through the CLI's own training
  function; then every test file scored as ``POST /predict/window`` with ``mode: "all"``
  scores it (``score_window(..., last=None)``, warm-up readings included). False-alarm
  rate: ``test_normal.csv`` and rows 0-159 of the 21 fault files; detection: rows
  160-959, mean over the 18 faults without 3, 9 and 15.
* synthetic: ``anomaly-api train --window 30 --seed S --json`` for S = 1..5 (held-out
  F1, FPR, recall per kind of the CLI's own report).
* NAB (``--only nab-train``): which of the corpus' 58 series train on their first 15%
  (``bench.nab``'s protocol), why the others do not, and what the input policies did.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomaly_api.data.timeseries import synthetic_timeseries, timeseries_from_frame
from anomaly_api.training.time_aware import TimeAwareSettings, train_time_aware_and_save
from bench.report import save_report

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / ".." / "shared" / "datasets"
FAULT_START = 160
EXCLUDED_FAULTS = (3, 9, 15)


def _settings(window: int, target_fpr: float | None, seed: int) -> TimeAwareSettings:
    """What ``anomaly-api train --window`` builds (``cli/train.py``)."""
    short = max(1, min(5, window - 2))
    return TimeAwareSettings(window=window, short=short, target_fpr=target_fpr, seed=seed)


def tep(datasets: Path, window: int, target_fpr: float) -> dict[str, Any]:
    """Train on train_normal.csv as the CLI does, score every test file in full."""
    folder = datasets / "tep"
    frame = pd.read_csv(folder / "train_normal.csv").drop(columns=["is_anomaly"])
    ts = timeseries_from_frame(frame, source="train_normal.csv", timestamp_column="timestamp")
    with tempfile.TemporaryDirectory() as tmp:
        result = train_time_aware_and_save(ts, Path(tmp), _settings(window, target_fpr, 42))
    model = result.trained.model
    names = list(ts.data.feature_names)

    def score(name: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        test = pd.read_csv(folder / name)
        seconds = np.arange(len(test), dtype=np.float64) * 180.0
        out = model.score_window(seconds, test[names].to_numpy(np.float64), last=None)
        return out.is_anomaly, test["is_anomaly"].to_numpy(np.int64)

    normal_flags, _ = score("test_normal.csv")
    pre_fault: list[np.ndarray[Any, Any]] = []
    faults: dict[str, float] = {}
    for number in range(1, 22):
        flagged, y = score(f"test_fault{number:02d}.csv")
        pre_fault.append(flagged[:FAULT_START])
        faults[str(number)] = float(flagged[y == 1].mean())
    normal = np.concatenate([normal_flags, *pre_fault])
    kept = [faults[str(n)] for n in range(1, 22) if n not in EXCLUDED_FAULTS]
    return {
        "command": (
            f"anomaly-api train --data train_normal.csv --timestamp-column timestamp "
            f"--window {window} --target-fpr {target_fpr:g}; every test file scored in full"
        ),
        "false_alarm_rate": float(normal.mean()),
        "false_alarm_rate_test_normal": float(normal_flags.mean()),
        "false_alarm_rate_pre_fault": float(np.concatenate(pre_fault).mean()),
        "n_normal_readings": len(normal),
        "mean_detection_18": float(np.mean(kept)),
        "faults": faults,
        "threshold_objective": result.trained.metrics["threshold_objective"],
        "false_alarm_rate_statement": result.trained.metrics.get("false_alarm_rate"),
    }


def synthetic(seeds: list[int], window: int) -> dict[str, Any]:
    """``anomaly-api train --window W --seed S --json`` per seed: the held-out report."""
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        ts = synthetic_timeseries(seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            result = train_time_aware_and_save(ts, Path(tmp), _settings(window, None, seed))
        test = result.trained.metrics["test"]
        per_seed[str(seed)] = {
            "f1": test["f1"],
            "fpr": test["fpr"],
            "per_kind_recall": test.get("per_kind_recall"),
            "false_alarm_rate_statement": result.trained.metrics.get("false_alarm_rate"),
        }
    values = list(per_seed.values())
    kinds = sorted({k for v in values for k in (v["per_kind_recall"] or {})})
    return {
        "command": f"anomaly-api train --window {window} --seed S --json, S = {seeds}",
        "f1_mean": float(np.mean([v["f1"] for v in values])),
        "fpr_mean": float(np.mean([v["fpr"] for v in values])),
        "fpr_max": float(np.max([v["fpr"] for v in values])),
        "recall_mean_per_kind": {  # over the seeds whose test part holds the kind
            k: float(np.mean([r[k] for v in values if k in (r := v["per_kind_recall"] or {})]))
            for k in kinds
        },
        "seeds": per_seed,
    }


def nab_train(datasets: Path, window: int) -> dict[str, Any]:
    """Train on every NAB series' first 15%; the failures and the policies applied."""
    from anomaly_api.data.errors import DataError

    failed: dict[str, str] = {}
    applied: dict[str, Any] = {}
    paths = sorted((datasets / "nab-corpus" / "data").glob("*/*.csv"))
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            frame = pd.read_csv(path)
            probation = frame.iloc[: int(len(frame) * 0.15)][["timestamp", "value"]]
            key = f"{path.parent.name}/{path.name}"
            try:
                ts = timeseries_from_frame(probation, source=key, timestamp_column="timestamp")
                settings = _settings(window, None, 42)
                train_time_aware_and_save(ts, Path(tmp) / key, settings, version="nab")
            except (DataError, ValueError) as exc:
                failed[key] = f"{type(exc).__name__}: {exc}"
                continue
            report = ts.input_report()
            if (
                report["irregular_sampling"]
                or report["merged_repeated_timestamps"]
                or (report["skipped_clock_steps_back"])
            ):
                applied[key] = report
    return {"series": len(paths), "not_trained": failed, "policies_applied": applied}


def main(argv: list[str] | None = None) -> None:
    """Run the measurements and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "fpr_user_path.json"
    )
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--target-fpr", type=float, default=0.02)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--only", choices=("synthetic", "tep", "nab-train"), default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {"command": " ".join(["python -m bench.fpr_user_path", *given])}
    if args.only in (None, "tep"):
        t = report["tep"] = tep(args.datasets, args.window, args.target_fpr)
        print(
            f"TEP: false alarms {t['false_alarm_rate']:.4f} (test_normal "
            f"{t['false_alarm_rate_test_normal']:.4f}, pre-fault "
            f"{t['false_alarm_rate_pre_fault']:.4f}), detection {t['mean_detection_18']:.3f}"
        )
    if args.only in (None, "synthetic"):
        seeds = [int(s) for s in args.seeds.split(",")]
        s = report["synthetic"] = synthetic(seeds, args.window)
        print(
            f"synthetic: F1 {s['f1_mean']:.3f}, FPR {s['fpr_mean']:.4f} (max "
            f"{s['fpr_max']:.4f}), recall {s['recall_mean_per_kind']}"
        )
    if args.only == "nab-train":
        n = report["nab_train"] = nab_train(args.datasets, args.window)
        print(f"NAB: {len(n['not_trained'])} of {n['series']} series do not train")
    report["seconds"] = time.perf_counter() - started
    save_report(args.out, report)


if __name__ == "__main__":
    main()
