"""``python -m bench.quality_time_bounds``: what bounds the synthetic time-aware numbers.

Two measurements on seeds 0-9 (the ``train --window 60`` pipeline, validation and test
parts together, every reading with a full window), written to
``bench/results/quality_time_bounds.json``:

* where the false positives of ``top4_z`` fall (max-F1 threshold tuned on the
  validation part, counted on the test part): within the 5 readings after an event ended
  (their short window still holds it) or elsewhere, without and with the mean gate;
* per statistic, the recall of level-shift and correlation-break readings by position
  in their event (0 = the event's first reading), with the threshold placed at exactly
  ``--fpr`` of the normal readings (an oracle: the best any threshold could do). The
  statistics: ``top4_z`` without and with the gate, the Hotelling T² of the relation
  residual vector (one reading, and its mean over the last 5), the largest 2-channel
  Mahalanobis distance of the residuals of the channel pairs correlated by 0.4 or more
  (the pairs a correlation break picks from), and a MEWMA (lambda 0.3) of the residuals.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from anomaly_api.data.timeseries import synthetic_timeseries
from anomaly_api.detection.time_aware import DEFAULT_MEAN_GATE, gate_means
from anomaly_api.training.thresholds import best_f1_threshold
from anomaly_api.training.time_aware import TimeAwareSettings, fit_time_aware, window_contains
from bench.report import save_report

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("level_shift", "correlation_break")
AFTER = 6  # a normal reading within 5 readings after an event's last one
MAX_POSITION = 6

Array = NDArray[np.float64]


def _top4(z: Array) -> Array:
    a = np.nan_to_num(np.abs(z))
    top = np.sort(a, axis=1)[:, -4:]
    result: Array = np.sqrt(np.sum(top**2, axis=1))
    return result


def _t2(vectors: Array, fit: NDArray[np.bool_]) -> Array:
    ok = fit & np.all(np.isfinite(vectors), axis=1)
    centred = vectors - np.median(vectors[ok], axis=0)
    precision = np.linalg.inv(np.cov(centred[ok], rowvar=False))
    result: Array = np.einsum("ij,jk,ik->i", centred, precision, centred)
    return result


def _trailing_mean(values: Array, k: int) -> Array:
    sums = np.cumsum(np.vstack([np.zeros((1, values.shape[1])), values]), axis=0)
    out = np.full_like(values, np.nan)
    out[k - 1 :] = (sums[k:] - sums[:-k]) / k
    return out


def _ewma(values: Array, lam: float) -> Array:
    out = np.empty_like(values)
    state = np.zeros(values.shape[1])
    for i, row in enumerate(values):
        state = lam * row + (1.0 - lam) * state
        out[i] = state
    return out


def _pairs(residuals: Array, scaled: Array, fit: NDArray[np.bool_]) -> Array:
    corr = np.corrcoef(scaled[fit], rowvar=False)
    n = scaled.shape[1]
    centred = residuals - np.median(residuals[fit], axis=0)
    cov = np.cov(centred[fit], rowvar=False)
    best = np.full(len(residuals), -np.inf)
    for i in range(n):
        for j in range(i + 1, n):
            if abs(corr[i, j]) < 0.4:
                continue
            pair = [i, j]
            precision = np.linalg.inv(cov[np.ix_(pair, pair)])
            c = centred[:, pair]
            best = np.maximum(best, np.einsum("ij,jk,ik->i", c, precision, c))
    return best


def _events(kinds: NDArray[np.str_], kind: str) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], (kinds == kind).astype(np.int64), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "quality_time_bounds.json"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fpr", type=float, default=0.005)
    args = parser.parse_args(argv)
    names = ("top4_z, no gate", "top4_z, gate 2", "T2 residual", "T2 residual mean 5")
    names += ("pair residual", "MEWMA 0.3")
    hits: dict[str, dict[str, dict[int, list[bool]]]] = {n: {k: {} for k in KINDS} for n in names}
    false_pos = {g: {"after_event": 0, "elsewhere": 0} for g in ("no gate", "gate 2")}
    for seed in range(args.seeds):
        ts = synthetic_timeseries(seed=seed)
        trained = fit_time_aware(ts, TimeAwareSettings(seed=seed, mean_gate=None))
        model, parts, y = trained.model, trained.parts, ts.data.y
        kinds = ts.data.kinds
        assert y is not None
        assert kinds is not None
        _, z, valid = model.window_z(ts.data.X, ts.segments)
        fit = trained.fit_rows & valid
        scaled = model.scale(ts.data.X)
        assert model.projector_ is not None
        residuals = scaled @ model.projector_.T
        gated = gate_means(z, model.kinds_, len(model.channels_), DEFAULT_MEAN_GATE)
        statistics: dict[str, Array] = {
            "top4_z, no gate": _top4(z),
            "top4_z, gate 2": _top4(gated),
            "T2 residual": _t2(residuals, fit),
            "T2 residual mean 5": _t2(_trailing_mean(residuals, 5), fit),
            "pair residual": _pairs(residuals, scaled, fit),
            "MEWMA 0.3": _t2(_ewma(residuals, 0.3), fit),
        }
        after = window_contains(y.astype(np.bool_), ts.segments, AFTER) & (y == 0)
        for gate, name in (("no gate", "top4_z, no gate"), ("gate 2", "top4_z, gate 2")):
            score = statistics[name]
            tune = (parts == 1) & valid
            threshold = -best_f1_threshold(-score[tune], y[tune])
            fp = (parts == 2) & valid & (y == 0) & (score > threshold)
            false_pos[gate]["after_event"] += int((fp & after).sum())
            false_pos[gate]["elsewhere"] += int((fp & ~after).sum())
        evaluated = (parts >= 1) & valid
        for name, score in statistics.items():
            threshold = float(np.quantile(score[evaluated & (y == 0)], 1.0 - args.fpr))
            for kind in KINDS:
                for start, stop in _events(np.where(evaluated, kinds, ""), kind):
                    for row in range(start, stop):
                        position = min(row - start, MAX_POSITION)
                        hits[name][kind].setdefault(position, []).append(
                            bool(score[row] > threshold)
                        )
    oracle: dict[str, Any] = {}
    for name in names:
        oracle[name] = {}
        for kind in KINDS:
            by_position = hits[name][kind]
            pooled = [h for values in by_position.values() for h in values]
            oracle[name][kind] = {
                "recall": float(np.mean(pooled)),
                "by_position": {
                    (f"{p}+" if p == MAX_POSITION else str(p)): float(np.mean(by_position[p]))
                    for p in sorted(by_position)
                },
            }
            shown = " ".join(f"{k}:{v:.2f}" for k, v in oracle[name][kind]["by_position"].items())
            print(f"{name:20s} {kind:18s} recall {oracle[name][kind]['recall']:.3f}  {shown}")
    print(f"false positives of top4_z on the test parts: {json.dumps(false_pos)}")
    given = sys.argv[1:] if argv is None else argv
    report = {
        "command": " ".join(["python -m bench.quality_time_bounds", *given]),
        "oracle_fpr": args.fpr,
        "false_positives_top4_z_test": false_pos,
        "oracle_recall": oracle,
    }
    save_report(args.out, report)


if __name__ == "__main__":
    main()
