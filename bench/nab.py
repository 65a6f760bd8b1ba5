"""NAB, the whole corpus, scored by NAB's own optimiser and scorer.

Each of the 58 series (``../shared/datasets/nab-corpus``) is handled as a user would: a
time-aware model is trained on the series' first 15% (NAB's probationary period, the only
readings a detector may learn from before it is scored), then the whole series is replayed
reading by reading through the backtest (``anomaly-api score --timestamp-column``: the
stream path, no look-ahead). The detector's output for NAB is the product's own decision:
``alarm`` readings carry their severity mapped into (0.5, 1], every other reading 0 (the
``score`` variant passes every reading's anomaly score through a logistic instead).

NAB's scorer runs unchanged in its own virtual environment (it needs ``pandas<2.2`` and
``numpy<2``), in a copy of the corpus: the null detector is run first (the normalisation
needs it), then our results are optimised, scored and normalised, and NAB's published
``numenta`` results are re-scored by the same scorer, which must give 70.1 on the standard
profile (proof that the scoring is NAB's).

    python -m bench.nab --out bench/results/nab.json [--variant alarm|score] [--window 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from anomaly_api.data.errors import DataError

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab-corpus"
SCORER_REQUIREMENTS = (
    "pandas==2.1.4",
    "numpy==1.26.4",
    "simplejson==4.3.0",
    "python-dateutil==4.0.0",
)
PROBATION = 0.15
DETECTOR = "anomalyapi"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def scorer_python(venv: Path) -> Path:
    """The scorer's interpreter, in ``venv`` (created with its pinned packages if missing)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *SCORER_REQUIREMENTS], check=True)
    return python


def nab_run(python: Path, corpus: Path, *args: str) -> None:
    """NAB's ``run.py`` in the corpus copy (output kept quiet unless it fails)."""
    done = subprocess.run(
        [str(python), "run.py", "--skipConfirmation", "-n", "2", *args],
        cwd=corpus,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"NAB run.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def series_scores(
    frame: pd.DataFrame, window: int, variant: str, workdir: Path
) -> NDArray[np.float64]:
    """Our detector's NAB score of every reading of one series (see the module doc)."""
    from anomaly_api.bulk.backtest import load_replayer, replay_input
    from anomaly_api.data.timeseries import timeseries_from_frame
    from anomaly_api.training.time_aware import TimeAwareSettings, train_time_aware_and_save

    n_probation = int(len(frame) * PROBATION)
    probation = frame.iloc[:n_probation][["timestamp", "value"]]
    series = timeseries_from_frame(probation, source="nab", timestamp_column="timestamp")
    artifacts = workdir / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    train_time_aware_and_save(series, artifacts, TimeAwareSettings(window=window), version="nab")
    replayer = load_replayer(artifacts, "nab")
    source = replay_input(frame, ("value",), timestamp_column="timestamp", stream_column=None)
    rows = source.streams[""]
    answers = replayer.replay(source.timestamps[rows], source.X[rows])
    scores = np.zeros(len(frame))
    if variant == "alarm":
        raised = answers["alarm"]
        scores[rows[raised]] = 0.5 + 0.5 * answers["severity"][raised]
    else:
        scores[rows] = expit(answers["anomaly_score"])
    scores[:n_probation] = 0.0  # not scored by NAB; our model learnt from these readings
    return scores


def write_results(corpus: Path, window: int, variant: str) -> dict[str, str]:
    """Our results file for every series (labels copied from NAB's numenta results);
    returns the series that could not be trained, with why (they score 0 throughout)."""
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted((corpus / "data").glob("*/*.csv")):
            category, name = path.parent.name, path.name
            frame = pd.read_csv(path)
            labels = pd.read_csv(corpus / "results" / "numenta" / category / f"numenta_{name}")
            try:
                scores = series_scores(frame, window, variant, Path(tmp))
            except (DataError, ValueError) as exc:  # recorded and reported per series
                failed[f"{category}/{name}"] = f"{type(exc).__name__}: {exc}"
                scores = np.zeros(len(frame))
            out = corpus / "results" / DETECTOR / category / f"{DETECTOR}_{name}"
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {
                    "timestamp": frame["timestamp"],
                    "value": frame["value"],
                    "anomaly_score": scores,
                    "label": labels["label"],
                }
            ).to_csv(out, index=False)
    return failed


def final_scores(corpus: Path, detector: str) -> dict[str, float]:
    """A detector's normalised score per profile, from NAB's ``final_results.json``."""
    results = json.loads((corpus / "results" / "final_results.json").read_text())
    return {profile: round(float(results[detector][profile]), 2) for profile in PROFILES}


def measure(window: int, variant: str, scorer_venv: Path) -> dict[str, Any]:
    """Run the whole protocol in a copy of the corpus; the report as a dict."""
    python = scorer_python(scorer_venv)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "nab"
        shutil.copytree(CORPUS, corpus)
        nab_run(python, corpus, "-d", "null", "--detect", "--optimize", "--score")
        failed = write_results(corpus, window, variant)
        nab_run(python, corpus, "-d", DETECTOR, "--optimize", "--score", "--normalize")
        ours = final_scores(corpus, DETECTOR)
        nab_run(python, corpus, "-d", "numenta", "--score", "--normalize")
        numenta = final_scores(corpus, "numenta")
    return {
        **ours,
        "numenta_standard_rescored": numenta["standard"],
        "numenta_rescored": numenta,
        "variant": variant,
        "window": window,
        "series": len(list((CORPUS / "data").glob("*/*.csv"))),
        "not_trained": failed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/nab.json"))
    parser.add_argument("--variant", choices=("alarm", "score"), default="alarm")
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument(
        "--scorer-venv",
        type=Path,
        default=Path.home() / ".cache" / "anomaly-api" / "nab-scorer",
        help="virtual environment of NAB's scorer (created if missing)",
    )
    args = parser.parse_args(argv)
    report = measure(args.window, args.variant, args.scorer_venv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "not_trained"}, indent=2))
    print(f"{len(report['not_trained'])} series not trained; wrote {args.out}")


if __name__ == "__main__":
    main()
