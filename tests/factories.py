"""Test data factories: tiny models fitted into temporary artifact directories.

A plain module (not a conftest) so that any test can import it by name: once a
sub-package has its own ``conftest.py``, ``from conftest import ...`` is ambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from anomaly_api.artifacts import build_manifest, save_artifact
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.training.references import build_references, reference_attachments

TINY_FEATURES = [f"f{i}" for i in range(8)]


def fit_tiny_artifact(
    artifacts_dir: Path, version: str = "tiny-1", seed: int = 0, n_rows: int = 600
) -> Path:
    """Fit a small ensemble on seeded Gaussian data and save it as ``version``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, len(TINY_FEATURES)))
    model = AnomalyEnsemble(n_estimators=25, n_neighbors=10, random_state=seed).fit(X)
    manifest = build_manifest(
        model,
        TINY_FEATURES,
        X,
        version=version,
        created_at=datetime.now(UTC),
        source=f"gaussian seed={seed}",
        n_rows=n_rows,
    )
    references = build_references(model, TINY_FEATURES, X)
    return save_artifact(
        model, manifest, artifacts_dir, attachments=reference_attachments(references)
    )


TIME_AWARE_SEED = 3
TIME_AWARE_ROWS = 10_000


def fit_time_aware_artifact(
    artifacts_dir: Path,
    version: str = "ta-1",
    seed: int = TIME_AWARE_SEED,
    n_rows: int = TIME_AWARE_ROWS,
) -> Path:
    """Train the default time-aware model on the synthetic stream and save it as ``version``."""
    from anomaly_api.data.timeseries import synthetic_timeseries
    from anomaly_api.training.time_aware import train_time_aware_and_save

    series = synthetic_timeseries(seed=seed, n_rows=n_rows)
    return train_time_aware_and_save(series, artifacts_dir, version=version).path


def synthetic_segments(
    seed: int = TIME_AWARE_SEED, n_rows: int = TIME_AWARE_ROWS
) -> list[tuple[str, int, int, set[int]]]:
    """Each injected segment of the synthetic data: kind, rows and the channels it changed."""
    from anomaly_api.data.anomalies import inject_anomalies, plan_segments, row_kinds
    from anomaly_api.data.synthetic import clean_signal

    rng = np.random.default_rng(seed)
    signal = clean_signal(rng, n_rows)
    segments = plan_segments(rng, n_rows, round(n_rows * 0.05))
    kinds = row_kinds(segments, n_rows)
    normal = signal[kinds == "normal"]
    standardized = (signal - normal.mean(axis=0)) / normal.std(axis=0)
    injected = inject_anomalies(rng, standardized, segments)
    changed = injected != standardized
    return [
        (
            seg.kind,
            seg.start,
            seg.stop,
            set(np.flatnonzero(changed[seg.start : seg.stop].any(axis=0)).tolist()),
        )
        for seg in segments
    ]
