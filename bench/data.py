"""Where the suite's data lives and what it serves: paths, datasets, models, request bodies."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATASETS = Path(os.environ.get("BENCH_DATASETS", ROOT.parent / "shared" / "datasets"))
"""TEP, NAB and ADBench: ``../shared/datasets`` beside the repository (CI provides them), or
``$BENCH_DATASETS``."""
TEP = DATASETS / "tep"
TEP_FAULT_ONSET = 160
"""Rows 0-159 of every TEP test file are normal; the fault acts from row 160."""
TEP_HARD_FAULTS = (3, 9, 15)
"""The faults the literature leaves out: hardly visible in the measured variables."""
N_FEATURES = 8
N_TRAIN = 10_000
BATCH_ROWS = 1_000
_BATCH_BASE = np.random.default_rng(1).normal(size=(BATCH_ROWS, N_FEATURES))


def tep_frame(name: str) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """A TEP file (``train_normal``, ``test_fault01``...) as ``labelled_csv`` reads it."""
    return labelled_csv(TEP / f"{name}.csv")


def labelled_csv(path: Path) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """A CSV with ``timestamp`` and ``is_anomaly``: the other columns, the labels, the names."""
    frame = pd.read_csv(path)
    names = [str(c) for c in frame.columns if c not in ("timestamp", "is_anomaly")]
    labels = frame["is_anomaly"].to_numpy(np.int64)
    return frame[names].to_numpy(np.float64), labels, names


def tep_available() -> bool:
    """Whether the TEP files are there (the parts that need them are skipped otherwise)."""
    return (TEP / "train_normal.csv").is_file()


def prepare_artifact(artifacts_dir: Path) -> None:
    """The bench's default-size ensemble on 10,000 correlated readings, as ``bench-1``."""
    from anomaly_api.artifacts import build_manifest, save_artifact, set_latest
    from anomaly_api.detection import AnomalyEnsemble
    from anomaly_api.training.references import build_references, reference_attachments

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(N_FEATURES, N_FEATURES)) / np.sqrt(N_FEATURES)
    X = rng.normal(size=(N_TRAIN, N_FEATURES)) @ mixing
    model = AnomalyEnsemble().fit(X)
    names = [f"sensor_{i}" for i in range(N_FEATURES)]
    manifest = build_manifest(
        model, names, X, version="bench-1", created_at=datetime.now(UTC),
        source="bench: correlated gaussian seed=0", n_rows=N_TRAIN,
    )  # fmt: skip
    attachments = reference_attachments(build_references(model, names, X))
    save_artifact(model, manifest, artifacts_dir, attachments=attachments)
    set_latest(artifacts_dir, "bench-1")


def small_fleet(root: Path, count: int, n_rows: int) -> Path:
    """One small model as ``default`` and as ``count`` more names (hard links + ``publish``)."""
    from anomaly_api.artifacts import build_manifest, save_artifact
    from anomaly_api.detection import AnomalyEnsemble
    from anomaly_api.training.publishing import discard, publish, staging_dir

    X = np.random.default_rng(3).normal(size=(n_rows, N_FEATURES))
    model = AnomalyEnsemble().fit(X)
    names = [f"sensor_{i}" for i in range(N_FEATURES)]
    manifest = build_manifest(model, names, X, version="small-1", created_at=datetime.now(UTC),
                              source="bench: gaussian seed=3", n_rows=n_rows)  # fmt: skip
    source = save_artifact(model, manifest, root)
    for i in range(count):
        staging = staging_dir(root, f"m{i:04d}", "bench") / "small-1"
        staging.mkdir(parents=True)
        for file in source.iterdir():
            os.link(file, staging / file.name)
        publish(root, f"m{i:04d}", staging.parent, "small-1")
        discard(staging.parent)
    return root


def prepare_time_aware(artifacts_dir: Path, n_rows: int, window: int = 60) -> None:
    """The default time-aware model (window 60, 8 channels) on the synthetic stream."""
    from anomaly_api.artifacts import set_latest
    from anomaly_api.data.timeseries import synthetic_timeseries
    from anomaly_api.training.time_aware import TimeAwareSettings, train_time_aware_and_save

    train_time_aware_and_save(
        synthetic_timeseries(seed=0, n_rows=n_rows),
        artifacts_dir,
        TimeAwareSettings(window=window),
        version="ta",
    )
    set_latest(artifacts_dir, "ta")


def one_row_body(i: int) -> bytes:
    """The ``i``-th ``/predict`` body: the wrk script's reading with two features nudged by
    ``i``, so no two bodies share a cache entry."""
    a, b = 0.5 + i * 1e-9, 0.9 - i * 1e-9
    return (
        f'{{"features":[{a:.12f},1.2,-0.3,0.8,1.5,0.2,-0.1,{b:.12f}],"observation_id":"bench"}}'
    ).encode()


def batch_body(i: int) -> bytes:
    """The ``i``-th 1,000-row ``/predict/batch`` body; its rows differ from every other's."""
    rows = np.round(_BATCH_BASE + i * 1e-6, 6).tolist()
    return orjson.dumps({"observations": [{"features": row} for row in rows]})
