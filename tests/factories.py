"""Test data factories: tiny models fitted into temporary artifact directories.

A plain module (not a conftest) so that any test can import it by name: once a
sub-package has its own ``conftest.py``, ``from conftest import ...`` is ambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anomaly_api.artifacts import build_manifest, save_artifact
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.service.answers import ColumnarBatchAnswer
from anomaly_api.service.prediction_columns import PredictionColumns
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


def fit_pumps(artifacts_dir: Path) -> Path:
    """Register the named model ``pumps`` in ``artifacts_dir``: ``p1`` (seed 1) its
    production version, ``p2`` (seed 2) its candidate. Returns the model's directory."""
    from anomaly_api import registry

    pumps = registry.model_dir(artifacts_dir, "pumps")
    fit_tiny_artifact(pumps, "p1", seed=1)
    registry.register_version(artifacts_dir, "pumps", "p1")
    fit_tiny_artifact(pumps, "p2", seed=2)
    (pumps / "LATEST").write_text("p1\n")  # saving p2 moved it; the aliases decide
    registry.register_version(artifacts_dir, "pumps", "p2")
    return pumps


TIME_AWARE_SEED = 3
TIME_AWARE_ROWS = 10_000


def fit_time_aware_artifact(
    artifacts_dir: Path,
    version: str = "ta-1",
    seed: int = TIME_AWARE_SEED,
    n_rows: int = TIME_AWARE_ROWS,
    follow_memory: int = 0,
) -> Path:
    """Train the default time-aware model on the synthetic stream and save it as ``version``
    (``follow_memory``: with the ``follow`` feature of that memory)."""
    from anomaly_api.data.timeseries import synthetic_timeseries
    from anomaly_api.training.time_aware import TimeAwareSettings, train_time_aware_and_save

    series = synthetic_timeseries(seed=seed, n_rows=n_rows)
    settings = TimeAwareSettings(follow_memory=follow_memory)
    return train_time_aware_and_save(series, artifacts_dir, settings, version=version).path


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


FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e-310, 1.7976931348623157e308, 0.1, 1 / 3]
)
"""Any double an answer can hold (JSON has no NaN or infinity)."""


@st.composite
def answer_batches(draw: st.DrawFn) -> ColumnarBatchAnswer:
    """Any answer of 1 to 12 rows, 1 to 5 (distinct) features and 1 to 4 detectors, any
    ``top_k``: names that need escaping or hold commas, ties, -0.0, the largest double."""
    n = draw(st.integers(1, 12))
    n_features = draw(st.integers(1, 5))
    n_detectors = draw(st.integers(1, 4))
    shares = draw(
        arrays(np.float64, (n, n_features), elements=st.sampled_from([0.0, -0.0, 0.25]) | FLOATS)
    )
    return ColumnarBatchAnswer(
        predictions=PredictionColumns(
            is_anomaly=draw(arrays(np.bool_, n)),
            anomaly_score=draw(arrays(np.float64, n, elements=FLOATS)),
            confidence=draw(arrays(np.float64, n, elements=FLOATS)),
            severity=draw(arrays(np.float64, n, elements=FLOATS)),
            scores=draw(arrays(np.float64, (n, n_detectors), elements=FLOATS)),
            votes=draw(arrays(np.bool_, (n, n_detectors))),
            shares=shares,
            cached=draw(arrays(np.bool_, n)),
        ),
        observation_ids=draw(st.lists(st.text(min_size=1, max_size=5), min_size=n, max_size=n)),
        feature_names=draw(
            st.lists(st.text(max_size=4), min_size=n_features, max_size=n_features, unique=True)
        ),
        detector_names=[f"detector,{q}" for q in range(n_detectors)],
        thresholds=draw(st.lists(FLOATS, min_size=n_detectors, max_size=n_detectors)),
        model_version=draw(st.text(max_size=5)),
        inference_ms=draw(FLOATS),
        top_k=draw(st.none() | st.integers(1, n_features)),
    )
