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
