"""Notebook 01 runs top to bottom, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_runner import run_notebook, stream_text

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_model_development.ipynb"


@pytest.mark.slow
def test_notebook_executes_top_to_bottom(
    python3_kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it
    outputs = run_notebook(NOTEBOOK, python3_kernel, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    text = stream_text(outputs)
    assert "recall by anomaly kind" in text
    assert "anomalous: votes=[1, 1, 1]" in text
    # the time-aware section: a stretch scored, its stuck sensor flagged by the `flat` count
    assert "readings scored" in text
    assert "stuck_sensor:" in text
    assert "flat for" in text
