"""Parts ``quality.time`` (detection quality of the time-aware model on synthetic data and
TEP) and ``quality.fpr`` (its false-alarm rate through the user's training path).

Protocols: docs/time-aware.md, Measured quality. ``quality.time``'s ``--set`` options:
``only`` (synthetic, tep), ``seeds``, ``first_seed``, ``window`` (60), ``short`` (5),
``tep_window`` (30), ``tep_fpr``, ``features``, ``tep_features``, ``detector`` (top4_z),
``target_fpr``, ``mean_gate`` and ``normal_floor`` (a number or ``none``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import synthetic_timeseries, timeseries_from_frame
from anomaly_api.detection.time_aware import DEFAULT_DETECTOR, DEFAULT_MEAN_GATE
from anomaly_api.detection.windows import DEFAULT_FEATURES
from anomaly_api.training.time_aware import (
    DEFAULT_NORMAL_FLOOR,
    TimeAwareSettings,
    fit_time_aware,
    new_time_aware_model,
    normal_fpr_offsets,
    train_time_aware_and_save,
)
from bench.data import (
    TEP,
    TEP_FAULT_ONSET,
    TEP_HARD_FAULTS,
    tep_available,
    tep_frame,
)
from bench.nab import CORPUS as NAB_CORPUS
from bench.nab import train_probation

if TYPE_CHECKING:
    from bench.__main__ import Context

INPUT_POLICIES = ("irregular_sampling", "merged_repeated_timestamps", "skipped_clock_steps_back")


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


def tep(settings: TimeAwareSettings, target_fpr: float, faults: range) -> dict[str, Any]:
    """Fit on train_normal, calibrate on test_normal, measure every fault file."""
    X_train, _, names = tep_frame("train_normal")
    model = new_time_aware_model(settings, relations=settings.relations).fit(
        X_train, channels=names, median_interval=180.0
    )
    X_cal = tep_frame("test_normal")[0]
    _, z, valid = model.window_z(X_cal)
    cal_scores = model.detector_scores(z[valid])
    model.detector_.set_offsets(normal_fpr_offsets(cal_scores, target_fpr))
    per_fault: dict[str, Any] = {}
    false_alarms: list[NDArray[np.bool_]] = []
    for number in faults:
        X, y, _ = tep_frame(f"test_fault{number:02d}")
        out = model.score_frame(X)
        flagged = out.is_anomaly
        # rows warming up (the first window - 1) are excluded from the false-alarm rate
        false_alarms.append(flagged[:TEP_FAULT_ONSET][~out.warming_up[:TEP_FAULT_ONSET]])
        after = np.flatnonzero(flagged[TEP_FAULT_ONSET:])
        per_fault[str(number)] = {
            "detection_rate": float(flagged[y == 1].mean()),
            "false_alarm_rate": float(false_alarms[-1].mean()),
            "first_alarm_readings": int(after[0]) if len(after) else None,
        }
    kept = [str(n) for n in faults if n not in TEP_HARD_FAULTS]
    rates = [per_fault[k]["detection_rate"] for k in kept]
    delays = [per_fault[k]["first_alarm_readings"] for k in kept]
    return {
        "protocol": (
            "fit on train_normal.csv; threshold = flags "
            f"{target_fpr:g} of test_normal.csv (never fitted on); FAR on rows 0-159 of the "
            "21 fault files after the warm-up rows"
        ),
        "window": settings.window,
        "features": list(model.kinds_),
        "mean_detection_without_3_9_15": float(np.mean(rates)),
        "mean_detection_all": float(np.mean([f["detection_rate"] for f in per_fault.values()])),
        "false_alarm_rate": float(np.concatenate(false_alarms).mean()),
        "median_first_alarm_readings": float(
            np.median([d if d is not None else 800 for d in delays])
        ),
        "faults": per_fault,
    }


def run(ctx: Context) -> dict[str, Any]:
    """The three measurements (or ``only`` one), with the options ``--set`` gave."""

    def number(name: str, default: float | None) -> float | None:
        text = ctx.option(name, str(default))
        return None if text.lower() == "none" else float(text)

    features = tuple(ctx.option("features", ",".join(DEFAULT_FEATURES)).split(","))
    base = TimeAwareSettings(
        window=ctx.option("window", 60), short=ctx.option("short", 5), features=features,
        detector=ctx.option("detector", DEFAULT_DETECTOR), target_fpr=number("target_fpr", None),
        mean_gate=number("mean_gate", DEFAULT_MEAN_GATE),
        normal_floor=number("normal_floor", DEFAULT_NORMAL_FLOOR),
    )  # fmt: skip
    only = ctx.option("only", "synthetic,tep").split(",")
    out: dict[str, Any] = {}
    if "synthetic" in only:
        first = ctx.option("first_seed", 0)
        out["synthetic"] = synthetic(range(first, first + ctx.option("seeds", ctx.size(1, 10))),
                                     base)  # fmt: skip
    if "tep" in only and tep_available():
        tep_features = ctx.option("tep_features", ",".join(features)).split(",")
        settings = TimeAwareSettings(window=ctx.option("tep_window", 30),
                                     features=tuple(tep_features), detector=base.detector,
                                     mean_gate=base.mean_gate)  # fmt: skip
        faults = range(1, ctx.size(3, 22))
        out["tep"] = tep(settings, ctx.option("tep_fpr", 0.02), faults)
    return {"quality": {"time": out}}


def _user_settings(
    window: int, target_fpr: float | None, seed: int, detector: str = DEFAULT_DETECTOR
) -> TimeAwareSettings:
    """What ``anomaly-api train --window`` builds (``detector``: the Python API's choice)."""
    short = max(1, min(5, window - 2))
    return TimeAwareSettings(
        window=window, short=short, target_fpr=target_fpr, seed=seed, detector=detector
    )


def user_tep(
    window: int, target_fpr: float, faults: range, detector: str = DEFAULT_DETECTOR
) -> dict[str, Any]:
    """TEP trained as the CLI does; every test file scored as ``/predict/window`` does and
    through the stream path (``StreamReplayer``) with adaptation off and on."""
    from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
    from anomaly_api.bulk.backtest import StreamReplayer
    from anomaly_api.config import get_settings
    from anomaly_api.monitoring.alarms import AlarmPolicy
    from anomaly_api.training.references import adaptation_model, load_references

    frame = pd.read_csv(TEP / "train_normal.csv").drop(columns=["is_anomaly"])
    ts = timeseries_from_frame(frame, source="train_normal.csv", timestamp_column="timestamp")
    with tempfile.TemporaryDirectory() as tmp:
        result = train_time_aware_and_save(
            ts, Path(tmp), _user_settings(window, target_fpr, 42, detector)
        )
        artifact = load_any_artifact(Path(tmp), None)
        assert isinstance(artifact, TimeAwareArtifact)
        adaptation = adaptation_model(
            artifact.model,
            load_references(artifact.path, artifact.manifest).scores,
            get_settings().stream_adaptation_memory,  # ANOMALY_STREAM_ADAPTATION_MEMORY
        )
        streams = {
            on: StreamReplayer(artifact, AlarmPolicy(), "numpy", adaptation if on else None)
            for on in (False, True)
        }
    model = result.trained.model
    names = list(ts.data.feature_names)
    files = ["test_normal", *(f"test_fault{n:02d}" for n in faults)]
    data = {name: tep_frame(name) for name in files}

    def rates(score: Any) -> dict[str, Any]:
        flags = {}
        for name, (X, _, columns) in data.items():
            seconds = np.arange(len(X), dtype=np.float64) * 180.0
            flags[name] = score(seconds, X[:, [columns.index(n) for n in names]])
        pre_fault = [flags[name][:TEP_FAULT_ONSET] for name in files[1:]]
        normal = np.concatenate([flags["test_normal"], *pre_fault])
        per_fault = {n[-2:].lstrip("0"): float(flags[n][data[n][1] == 1].mean()) for n in files[1:]}
        kept = [rate for n, rate in per_fault.items() if int(n) not in TEP_HARD_FAULTS]
        return {
            "false_alarm_rate": float(normal.mean()),
            "false_alarm_rate_test_normal": float(flags["test_normal"].mean()),
            "false_alarm_rate_pre_fault": float(np.concatenate(pre_fault).mean()),
            "n_normal_readings": len(normal),
            "mean_detection_18": float(np.mean(kept)),
            "faults": per_fault,
        }

    out = rates(lambda t, X: model.score_window(t, X, last=None).is_anomaly)
    return {
        "command": (
            f"anomaly-api train --data train_normal.csv --timestamp-column timestamp "
            f"--window {window} --target-fpr {target_fpr:g}; every test file scored in full"
        ),
        "detector": detector,
        **out,
        "stream": rates(lambda t, X: streams[False].replay(t, X)["is_anomaly"]),
        "stream_adapted": rates(lambda t, X: streams[True].replay(t, X)["is_anomaly"]),
        "adaptation": None if adaptation is None else adaptation.to_dict(),
        "threshold_objective": result.trained.metrics["threshold_objective"],
        "false_alarm_rate_statement": result.trained.metrics.get("false_alarm_rate"),
    }


def user_synthetic(
    seeds: list[int], window: int, detector: str = DEFAULT_DETECTOR
) -> dict[str, Any]:
    """``anomaly-api train --window W --seed S --json`` per seed: the held-out report."""
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        ts = synthetic_timeseries(seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            result = train_time_aware_and_save(
                ts, Path(tmp), _user_settings(window, None, seed, detector)
            )
        test = result.trained.metrics["test"]
        per_seed[str(seed)] = {
            "f1": test["f1"], "fpr": test["fpr"], "per_kind_recall": test.get("per_kind_recall"),
            "false_alarm_rate_statement": result.trained.metrics.get("false_alarm_rate"),
        }  # fmt: skip
    values = list(per_seed.values())
    kinds = sorted({k for v in values for k in (v["per_kind_recall"] or {})})
    return {
        "command": f"anomaly-api train --window {window} --seed S --json, S = {seeds}",
        "detector": detector,
        "f1_mean": float(np.mean([v["f1"] for v in values])),
        "fpr_mean": float(np.mean([v["fpr"] for v in values])),
        "fpr_max": float(np.max([v["fpr"] for v in values])),
        "recall_mean_per_kind": {  # over the seeds whose test part holds the kind
            k: float(np.mean([r[k] for v in values if k in (r := v["per_kind_recall"] or {})]))
            for k in kinds
        },
        "seeds": per_seed,
    }


def nab_train(window: int, series: int) -> dict[str, Any]:
    """Train on every NAB series' probationary period; the failures and the policies applied."""
    failed: dict[str, str] = {}
    applied: dict[str, Any] = {}
    paths = sorted((NAB_CORPUS / "data").glob("*/*.csv"))[:series]
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            key = f"{path.parent.name}/{path.name}"
            settings = _user_settings(window, None, 42)
            try:
                ts = train_probation(pd.read_csv(path), settings, Path(tmp) / key)
            except (DataError, ValueError) as exc:
                failed[key] = f"{type(exc).__name__}: {exc}"
                continue
            report = ts.input_report()
            if any(report[name] for name in INPUT_POLICIES):
                applied[key] = report
    return {"series": len(paths), "not_trained": failed, "policies_applied": applied}


def fpr(ctx: Context) -> dict[str, Any]:
    """Part ``quality.fpr``: TEP, synthetic and ``nab-train`` trained as the CLI does.

    ``--set``: ``window`` (30), ``target_fpr`` (0.02), ``seeds`` (1-5), ``detector``, ``only``
    (tep, synthetic, nab-train; default the first two).
    """
    window = ctx.option("window", 30)
    detector = ctx.option("detector", DEFAULT_DETECTOR)
    only = ctx.option("only", ctx.size("tep,synthetic,nab-train", "tep,synthetic")).split(",")
    out: dict[str, Any] = {}
    if "tep" in only and tep_available():
        faults = range(1, ctx.size(3, 22))
        out["tep"] = user_tep(window, ctx.option("target_fpr", 0.02), faults, detector)
    if "synthetic" in only:
        seeds = [int(s) for s in ctx.option("seeds", ctx.size("1", "1,2,3,4,5")).split(",")]
        out["synthetic"] = user_synthetic(seeds, window, detector)
    if "nab-train" in only and NAB_CORPUS.is_dir():
        out["nab_train"] = nab_train(window, ctx.size(3, 1000))
    return {"quality": {"fpr": out}}
