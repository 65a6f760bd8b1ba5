"""Fixtures of the bulk-scoring tests: input files over the tiny model's features."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2e.e2e_service import cli_path

FEATURES = [f"f{i}" for i in range(8)]


def readings(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: an id, the 8 features (in shuffled order), a label, a text column."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 8))
    values[::97] *= 8.0
    frame = pd.DataFrame(values, columns=FEATURES)
    frame.insert(0, "reading_id", np.arange(n, dtype=np.int64))
    frame["is_anomaly"] = (np.arange(n) % 97 == 0).astype(np.int64)  # a label column
    frame["site"] = [f"site-{i % 3}" for i in range(n)]
    return frame[["reading_id", "site", *reversed(FEATURES), "is_anomaly"]]


@pytest.fixture
def artifacts(tiny_artifacts_dir: Path) -> Path:
    """The tiny model's directory (read-only use)."""
    return tiny_artifacts_dir


def score_command(data: Path, out: Path, *options: str) -> list[str]:
    """``anomaly-api score --data DATA --out OUT OPTIONS...``."""
    return [cli_path(), "score", "--data", str(data), "--out", str(out), *options]


def run_score(data: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``score_command`` to the end (4 minutes at most), capturing its output."""
    return subprocess.run(
        score_command(data, out, *options),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
