"""The models the benchmark serves, fitted into a temporary directory at the start of a run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

N_TRAIN = 10_000
N_FEATURES = 8


def prepare_artifact(artifacts_dir: Path) -> None:
    """Fit the default-size ensemble (100 trees, k=20) on 10,000 correlated readings."""
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
    save_artifact(model, manifest, artifacts_dir, attachments=attachments)  # drift reference too
    set_latest(artifacts_dir, "bench-1")


def prepare_time_aware(artifacts_dir: Path, n_rows: int) -> None:
    """The default time-aware model (window 60, 8 channels) on the synthetic stream."""
    from anomaly_api.artifacts import set_latest
    from anomaly_api.data.timeseries import synthetic_timeseries
    from anomaly_api.training.time_aware import train_time_aware_and_save

    train_time_aware_and_save(
        synthetic_timeseries(seed=0, n_rows=n_rows), artifacts_dir, version="ta"
    )
    set_latest(artifacts_dir, "ta")
