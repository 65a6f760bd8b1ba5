"""``python -m bench.quality_time_thresholds``: labelled threshold selections compared.

For each synthetic seed, the ``train --window 60`` model is fitted once (as
``bench.quality_time`` does; a threshold changes no score), then every selection below
picks the window detector's threshold from the same validation part (the 20% before
the held-out last 20%), and the held-out part is counted as ``evaluate_stream`` counts
it (warm-up readings keep the point-wise fallback's flags). Per seed set: mean and
minimum F1, mean and maximum FPR, and seed 42 (the CLI's default) when in the set.

Selections (lower score = more abnormal; a threshold flags the scores below it):

* ``max-f1``: the threshold of maximum F1 on the validation part (before);
* ``normal-floor=k``: the stricter of max F1 and ``median - k * 1.4826 * MAD`` of the
  validation part's normal scores (``normal_floor_threshold``; the default, k = 4.5);
* ``empirical-floor=p``: the stricter of max F1 and the threshold flagging a share
  ``p`` of the validation normals;
* ``f0.5``: maximum F-beta with beta 0.5 (precision weighted twice);
* ``plateau=e``: the middle of the contiguous run of thresholds whose F1 is within
  ``e`` of the maximum;
* ``smoothed-f1=w``: maximum of F1 smoothed over ``w`` neighbouring cuts;
* ``folds-median=K`` / ``folds-min=K``: max F1 on each of ``K`` consecutive blocks of
  the validation part, then their median / their strictest;
* ``max-f1+drift``: max F1, then the threshold moves with the median score of the
  last 500 window scores before each reading, less the validation normals' median (a
  serving-time change, not a selection: it needs a running median per stream).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score

from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.training.thresholds import (
    best_f1_threshold,
    floored_f1_threshold,
    target_fpr_threshold,
)
from anomaly_api.training.time_aware import TimeAwareSettings, fit_time_aware
from bench.report import save_report

ROOT = Path(__file__).resolve().parent.parent
Scores = NDArray[np.float64]
Labels = NDArray[np.int64]
Select = Callable[[Scores, Labels], float]
DRIFT_WINDOW = 500


def _f1_curve(scores: Scores, y: Labels) -> tuple[Scores, Scores, NDArray[np.bool_]]:
    """F1 of cutting after each sorted score, the cut's threshold, and where a cut is allowed."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    true_pos = np.cumsum(y[order])
    flagged = np.arange(1, len(scores) + 1)
    f1 = 2.0 * true_pos / (flagged + int(y.sum()))
    thresholds = np.append((ordered[:-1] + ordered[1:]) / 2.0, ordered[-1] + 1.0)
    cuttable = np.append(ordered[1:] > ordered[:-1], True)
    return f1, thresholds, cuttable


def f_beta(beta: float) -> Select:
    def select(scores: Scores, y: Labels) -> float:
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        true_pos = np.cumsum(y[order])
        flagged = np.arange(1, len(scores) + 1)
        fb = (1 + beta**2) * true_pos / (flagged + beta**2 * int(y.sum()))
        cuttable = np.append(ordered[1:] > ordered[:-1], True)
        k = int(np.argmax(np.where(cuttable, fb, -1.0)))
        thresholds = np.append((ordered[:-1] + ordered[1:]) / 2.0, ordered[-1] + 1.0)
        return float(thresholds[k])

    return select


def plateau(eps: float) -> Select:
    def select(scores: Scores, y: Labels) -> float:
        f1, thresholds, cuttable = _f1_curve(scores, y)
        f1 = np.where(cuttable, f1, -1.0)
        best = float(f1.max())
        lo = hi = int(np.argmax(f1))
        while lo > 0 and (f1[lo - 1] >= best - eps or not cuttable[lo - 1]):
            lo -= 1
        while hi < len(f1) - 1 and (f1[hi + 1] >= best - eps or not cuttable[hi + 1]):
            hi += 1
        return float((thresholds[lo] + thresholds[hi]) / 2.0)

    return select


def smoothed_f1(width: int) -> Select:
    def select(scores: Scores, y: Labels) -> float:
        f1, thresholds, cuttable = _f1_curve(scores, y)
        smooth = np.convolve(f1, np.ones(width) / width, mode="same")
        return float(thresholds[int(np.argmax(np.where(cuttable, smooth, -1.0)))])

    return select


def folds(k: int, strictest: bool) -> Select:
    def select(scores: Scores, y: Labels) -> float:
        picked = [
            best_f1_threshold(scores[b], y[b])
            for b in np.array_split(np.arange(len(scores)), k)
            if 0 < int(y[b].sum()) < len(b)
        ]
        if not picked:
            return best_f1_threshold(scores, y)
        return float(np.min(picked) if strictest else np.median(picked))

    return select


def empirical_floor(share: float) -> Select:
    def select(scores: Scores, y: Labels) -> float:
        return min(best_f1_threshold(scores, y), target_fpr_threshold(scores, y, share))

    return select


def normal_floor(k: float) -> Select:
    return lambda scores, y: floored_f1_threshold(scores, y, k)


SELECTIONS: dict[str, Select] = {
    "max-f1": best_f1_threshold,
    **{f"normal-floor={k:g}": normal_floor(k) for k in (3.5, 4.0, 4.5, 5.0)},
    "empirical-floor=0.001": empirical_floor(0.001),
    "f0.5": f_beta(0.5),
    "plateau=0.05": plateau(0.05),
    "smoothed-f1=11": smoothed_f1(11),
    "folds-median=3": folds(3, strictest=False),
    "folds-min=2": folds(2, strictest=True),
}


def _counted(
    y: Labels,
    pointwise: NDArray[np.bool_],
    valid: NDArray[np.bool_],
    window_flags: NDArray[np.bool_],
) -> tuple[float, float]:
    flags = pointwise.copy()
    flags[valid] = window_flags
    return float(f1_score(y, flags, zero_division=0.0)), float(flags[y == 0].mean())


def one_seed(seed: int, window: int) -> dict[str, tuple[float, float]]:
    """Held-out (F1, FPR) of every selection on one seed."""
    ts = synthetic_timeseries(seed=seed)
    trained = fit_time_aware(ts, TimeAwareSettings(window=window, seed=seed, normal_floor=None))
    model, y = trained.model, ts.data.y
    assert y is not None
    _, z, valid = model.window_z(ts.data.X, ts.segments)
    tune = (trained.parts == 1) & valid
    val_scores, val_y = model.detector_scores(z[tune])[:, 0], y[tune]
    test = trained.parts == 2
    out = model.score_frame(ts.data.X[test], ts.segments[test])
    _, zt, vt = model.window_z(ts.data.X[test], ts.segments[test])
    test_scores, test_y = model.detector_scores(zt[vt])[:, 0], y[test]
    result = {
        name: _counted(test_y, out.is_anomaly, vt, test_scores < select(val_scores, val_y))
        for name, select in SELECTIONS.items()
    }
    # max F1, with the threshold following the running median of the window scores
    history = np.concatenate([val_scores[-DRIFT_WINDOW:], test_scores])
    running = np.array([np.median(history[i : i + DRIFT_WINDOW]) for i in range(len(test_scores))])
    moved = best_f1_threshold(val_scores, val_y) + running - np.median(val_scores[val_y == 0])
    result["max-f1+drift"] = _counted(test_y, out.is_anomaly, vt, test_scores < moved)
    return result


def summarise(per_seed: dict[int, dict[str, tuple[float, float]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in next(iter(per_seed.values())):
        f1 = np.array([per_seed[s][name][0] for s in per_seed])
        fpr = np.array([per_seed[s][name][1] for s in per_seed])
        summary[name] = {
            "f1_mean": float(f1.mean()),
            "f1_min": float(f1.min()),
            "fpr_mean": float(fpr.mean()),
            "fpr_max": float(fpr.max()),
            **({"seed_42": list(per_seed[42][name])} if 42 in per_seed else {}),
        }
    return summary


def _seed_set(text: str) -> range:
    first, last = (int(v) for v in text.split("-"))
    return range(first, last + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results" / "quality_time_threshold_alternatives.json",
    )
    parser.add_argument(
        "--sets",
        default="10-39,0-9,40-49,50-69",
        help="seed sets first-last, comma separated (the first chose the default)",
    )
    parser.add_argument("--window", type=int, default=60)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "command": " ".join(["python -m bench.quality_time_thresholds", *given]),
        "sets": {},
    }
    for text in args.sets.split(","):
        per_seed = {seed: one_seed(seed, args.window) for seed in _seed_set(text)}
        summary = summarise(per_seed)
        report["sets"][text] = {
            "summary": summary,
            "per_seed_f1": {
                name: [round(per_seed[s][name][0], 4) for s in per_seed] for name in summary
            },
        }
        print(f"seeds {text}")
        for name, row in summary.items():
            print(
                f"  {name:<22} F1 {row['f1_mean']:.3f} (min {row['f1_min']:.3f})  "
                f"FPR {row['fpr_mean']:.2%} (max {row['fpr_max']:.2%})"
            )
    report["seconds"] = time.perf_counter() - started
    save_report(args.out, report)


if __name__ == "__main__":
    main()
