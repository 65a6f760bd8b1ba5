"""Part ``quality.nab``: the NAB corpus through the user's path, scored by NAB's own scorer.

Protocol: docs/time-aware.md, NAB. ``python -m bench.nab --out FILE [--set NAME=VALUE ...]``
runs this part alone and writes its report flat (as ``bench/results/nab.json``)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import timeseries_from_frame
from anomaly_api.training.time_aware import TimeAwareSettings, train_time_aware_and_save
from bench.data import DATASETS

if TYPE_CHECKING:
    from bench.__main__ import Context

CORPUS = DATASETS / "nab-corpus"
SCORER_REQUIREMENTS = ("pandas==2.1.4", "numpy==1.26.4", "simplejson==4.3.0",
                       "python-dateutil==4.0.0")  # fmt: skip
SMOKE_SERIES = (
    "artificialWithAnomaly/art_daily_jumpsup.csv,realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"
)
PROBATION = 0.15
PROBATION_CAP = 750
"""NAB's probationary period is the first 15% of a series, at most 750 readings
(``nab/sweeper.py``: ``min(floor(0.15 * n), 0.15 * 5000)``): later readings are scored."""
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
        cwd=corpus, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"NAB run.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def probation(n_rows: int) -> int:
    """Readings of a series' probationary period (learnt from, not scored)."""
    return min(int(n_rows * PROBATION), PROBATION_CAP)


def train_probation(frame: pd.DataFrame, settings: TimeAwareSettings, artifacts: Path) -> Any:
    """A time-aware model trained on the probationary period (version ``nab``); its series."""
    head = frame.iloc[: probation(len(frame))][["timestamp", "value"]]
    series = timeseries_from_frame(head, source="nab", timestamp_column="timestamp")
    train_time_aware_and_save(series, artifacts, settings, version="nab")
    return series


def series_scores(
    frame: pd.DataFrame, settings: TimeAwareSettings, variant: str, workdir: Path
) -> NDArray[Any]:
    """Our detector's NAB score of every reading of one series (see the module doc)."""
    from anomaly_api.bulk.backtest import load_replayer, replay_input

    artifacts = workdir / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    train_probation(frame, settings, artifacts)
    replayer = load_replayer(artifacts, "nab")
    source = replay_input(frame, ("value",), timestamp_column="timestamp", stream_column=None)
    stream = source.streams[""]
    answers = replayer.replay(stream.timestamps, stream.X)
    answered = stream.reading >= 0  # each file row gets its reading's answer
    rows, reading = stream.rows[answered], stream.reading[answered]
    scores = np.zeros(len(frame))
    if variant == "alarm":
        raised = answers["alarm"][reading]
        scores[rows[raised]] = 0.5 + 0.5 * answers["severity"][reading][raised]
    else:
        scores[rows] = expit(answers["anomaly_score"][reading])
    scores[: probation(len(frame))] = 0.0  # not scored by NAB; our model learnt these
    return scores


def write_results(corpus: Path, settings: TimeAwareSettings, variant: str) -> dict[str, str]:
    """Our results file for every series; the series that could not be trained, with why."""
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted((corpus / "data").glob("*/*.csv")):
            category, name = path.parent.name, path.name
            frame = pd.read_csv(path)
            labels = pd.read_csv(corpus / "results" / "numenta" / category / f"numenta_{name}")
            try:
                scores = series_scores(frame, settings, variant, Path(tmp))
            except (DataError, ValueError) as exc:  # recorded and reported per series
                failed[f"{category}/{name}"] = f"{type(exc).__name__}: {exc}"
                scores = np.zeros(len(frame))
            out = corpus / "results" / DETECTOR / category / f"{DETECTOR}_{name}"
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {"timestamp": frame["timestamp"], "value": frame["value"],
                 "anomaly_score": scores, "label": labels["label"]}
            ).to_csv(out, index=False)  # fmt: skip
    return failed


def copy_corpus(corpus: Path, series: list[str] | None) -> None:
    """NAB's corpus copied to ``corpus``, cut to ``series`` (data, numenta's results, labels)."""
    shutil.copytree(CORPUS, corpus)
    if series is None:
        return
    for path in (corpus / "data").glob("*/*.csv"):
        key = f"{path.parent.name}/{path.name}"
        if key not in series:
            path.unlink()
            (corpus / "results" / "numenta" / path.parent.name / f"numenta_{path.name}").unlink()
    windows = corpus / "labels" / "combined_windows.json"
    kept = {k: v for k, v in json.loads(windows.read_text()).items() if k in series}
    windows.write_text(json.dumps(kept, indent=4))


def final_scores(corpus: Path, detector: str) -> dict[str, float]:
    """A detector's normalised score per profile, from NAB's ``final_results.json``."""
    results = json.loads((corpus / "results" / "final_results.json").read_text())
    return {profile: round(float(results[detector][profile]), 2) for profile in PROFILES}


def run(ctx: Context) -> dict[str, Any]:
    """The part, or why it was skipped (no corpus)."""
    if not (CORPUS / "run.py").is_file():
        print(f"quality.nab skipped: no NAB corpus at {CORPUS}")
        return {"quality": {"nab": {"skipped": f"no NAB corpus at {CORPUS}"}}}
    window, variant = ctx.option("window", 30), ctx.option("variant", "alarm")
    follow = ctx.option("follow", TimeAwareSettings().follow_memory)
    settings = TimeAwareSettings(window=window, follow_memory=follow)
    chosen = ctx.option("series", ctx.size(SMOKE_SERIES, ""))
    series = chosen.split(",") if chosen else None
    default_venv = Path.home() / ".cache" / "anomaly-api" / "nab-scorer"
    python = scorer_python(Path(ctx.option("scorer_venv", str(default_venv))))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "nab"
        copy_corpus(corpus, series)
        nab_run(python, corpus, "-d", "null", "--detect", "--optimize", "--score")
        failed = write_results(corpus, settings, variant)
        nab_run(python, corpus, "-d", DETECTOR, "--optimize", "--score", "--normalize")
        ours = final_scores(corpus, DETECTOR)
        nab_run(python, corpus, "-d", "numenta", "--score", "--normalize")
        numenta = final_scores(corpus, "numenta")
        n_series = len(list((corpus / "data").glob("*/*.csv")))
    report = {
        **ours,
        "numenta_standard_rescored": numenta["standard"],
        "numenta_rescored": numenta,
        "variant": variant,
        "window": window,
        "follow_memory": follow,
        "series": n_series,
        "not_trained": failed,
    }
    return {"quality": {"nab": report}}


def main(argv: list[str] | None = None) -> None:
    """``quality.nab`` alone, its report written flat to ``--out``."""
    from bench.__main__ import Context

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/nab.json"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    options = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Context(False, Path(tmp), options=options))["quality"]["nab"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "not_trained"}, indent=2))


if __name__ == "__main__":
    main()
