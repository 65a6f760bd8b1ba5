"""Section ``quality``: detection quality, reproducibly (seeded).

``pointwise`` (here): the ensemble on TEP, the synthetic data and ADBench (``--set
detectors=a,b``, ``min_votes``, ``contamination``; ``faults``, ``seeds``, ``sets``);
``time`` and ``fpr``: ``bench.quality_time``; ``nab``: ``bench.nab``; ``feedback``:
``bench.feedback``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from anomaly_api.data.loading import synthetic_dataset
from anomaly_api.training.pipeline import EnsembleConfig, fit_and_evaluate, new_ensemble
from bench import feedback, nab, quality_time
from bench.data import DATASETS, TEP_FAULT_ONSET, TEP_HARD_FAULTS, tep_available, tep_frame

if TYPE_CHECKING:
    from bench.__main__ import Context

ADBENCH = DATASETS / "adbench_classical"
ADBENCH_SETS = ("thyroid", "cardio", "satellite", "pendigits", "mammography", "shuttle")
ADBENCH_DROP = {"cardio": ("f6",)}
"""Constant in cardio's normal training rows (non-zero only in anomalies): the model,
which scales its inputs, refuses a constant feature."""

# Variables a fault acts on directly (Downs & Vogel 1993; Chiang, Russell & Braatz 2001; see
# docs/which-sensor.md): A feed, A and C feed, reactor cooling, condenser cooling, purge.
KNOWN_VARIABLES: dict[int, tuple[str, ...]] = {
    1: ("xmeas_1", "xmeas_4", "xmv_3", "xmv_4"), 2: ("xmeas_10", "xmv_6"),
    4: ("xmv_10", "xmeas_9", "xmeas_21"), 5: ("xmv_11", "xmeas_22", "xmeas_11"),
    6: ("xmeas_1", "xmv_3"), 7: ("xmeas_4", "xmv_4"), 11: ("xmv_10", "xmeas_9", "xmeas_21"),
    12: ("xmv_11", "xmeas_22", "xmeas_11"), 14: ("xmv_10", "xmeas_9", "xmeas_21"),
}  # fmt: skip


def config(ctx: Context) -> EnsembleConfig:
    """The members, vote and contamination ``--set`` chose (the defaults otherwise)."""
    default = EnsembleConfig()
    detectors = ctx.option("detectors", ",".join(default.detectors))
    return EnsembleConfig(
        detectors=tuple(detectors.split(",")),
        min_votes=ctx.option("min_votes", default.min_votes),
        contamination=ctx.option("contamination", default.contamination),
    )


def _tep(ctx: Context) -> dict[str, Any]:
    """Detection and false-alarm rates per TEP fault, and top-contribution hits."""
    train, _, features = tep_frame("train_normal")
    started = time.perf_counter()
    model = new_ensemble(ctx.option("seed", 42), config(ctx)).fit(train)
    fit_seconds = time.perf_counter() - started
    every = ",".join(map(str, range(1, 22)))
    faults = [int(f) for f in ctx.option("faults", ctx.size("4,14", every)).split(",")]
    normal_flags = [model.predict(tep_frame("test_normal")[0]) == -1]
    per_fault: dict[str, Any] = {}
    for fault in faults:
        out = model.explain(tep_frame(f"test_fault{fault:02d}")[0])
        flags = out.is_anomaly
        normal_flags.append(flags[:TEP_FAULT_ONSET])
        after = flags[TEP_FAULT_ONSET:]
        row: dict[str, Any] = {
            "detection_rate": float(after.mean()),
            "false_alarm_rate": float(flags[:TEP_FAULT_ONSET].mean()),
        }
        contributions = getattr(out, "contributions", None)
        if fault in KNOWN_VARIABLES and contributions is not None:
            known = {features.index(name) for name in KNOWN_VARIABLES[fault]}
            fault_rows = contributions[TEP_FAULT_ONSET:][after]
            top = np.argsort(-fault_rows, axis=1, kind="stable")[:, :3]
            names, counts = np.unique(top[:, 0], return_counts=True)
            row["known_variables"] = list(KNOWN_VARIABLES[fault])
            row["flagged_rows"] = int(after.sum())
            row["top1_names_known"] = float(np.isin(top[:, 0], list(known)).mean())
            row["top3_has_known"] = float(np.isin(top, list(known)).any(axis=1).mean())
            row["most_frequent_top1"] = features[int(names[np.argmax(counts)])]
        per_fault[str(fault)] = row
    rates = {int(f): v["detection_rate"] for f, v in per_fault.items()}
    kept = [r for f, r in rates.items() if f not in TEP_HARD_FAULTS]
    hits = [v["top1_names_known"] for v in per_fault.values() if "top1_names_known" in v]
    return {
        "model": model.get_params(),
        "fit_seconds": fit_seconds,
        "false_alarm_rate": float(np.concatenate(normal_flags).mean()),
        "mean_detection_rate_all": float(np.mean(list(rates.values()))),
        "mean_detection_rate_without_3_9_15": float(np.mean(kept)) if kept else None,
        "mean_top1_names_known": float(np.mean(hits)) if hits else None,
        "faults": per_fault,
    }


def _synthetic(ctx: Context) -> dict[str, Any]:
    """Per-kind recall and ROC-AUC of the ensemble on the synthetic data, per seed."""
    runs = []
    for seed in range(ctx.option("seeds", ctx.size(1, 10))):
        trained = fit_and_evaluate(synthetic_dataset(seed=seed), seed=seed, config=config(ctx))
        test = trained.metrics["test"]
        recall = {k: v["ensemble"] for k, v in test["per_kind_recall"].items()}
        runs.append(
            {"seed": seed, "ensemble": test["detectors"]["ensemble"], "per_kind_recall": recall}
        )
    kinds = runs[0]["per_kind_recall"].keys()
    return {
        "mean_per_kind_recall": {
            k: float(np.mean([r["per_kind_recall"][k] for r in runs])) for k in kinds
        },
        "mean": {
            m: float(np.mean([r["ensemble"][m] for r in runs]))
            for m in ("recall", "precision", "f1", "fpr", "roc_auc", "pr_auc")
        },
        "runs": runs,
    }


def _adbench(ctx: Context) -> dict[str, Any]:
    """Held-out test metrics of the ensemble on each ADBench classical set."""
    from anomaly_api.data.loading import load_dataset

    results = {}
    for name in ctx.option("sets", ctx.size("thyroid", ",".join(ADBENCH_SETS))).split(","):
        dataset = load_dataset(ADBENCH / f"{name}.csv")
        if name in ADBENCH_DROP:
            kept = [f for f in dataset.feature_names if f not in ADBENCH_DROP[name]]
            dataset = load_dataset(ADBENCH / f"{name}.csv", features=kept)
        trained = fit_and_evaluate(dataset, seed=ctx.option("seed", 42), config=config(ctx))
        results[name] = trained.metrics["test"]["detectors"]["ensemble"]
    return {"sets": results}


def pointwise(ctx: Context) -> dict[str, Any]:
    """The ensemble on TEP (when present), the synthetic data and ADBench (when present)."""
    out: dict[str, Any] = {"model": new_ensemble(0, config(ctx)).get_params(),
                           "synthetic": _synthetic(ctx)}  # fmt: skip
    if tep_available():
        out["tep"] = _tep(ctx)
    if ADBENCH.is_dir():
        out["adbench"] = _adbench(ctx)
    return {"quality": {"pointwise": out}}


PARTS = {
    "pointwise": pointwise,
    "time": quality_time.run,
    "fpr": quality_time.fpr,
    "nab": nab.run,
    "feedback": feedback.run,
}
