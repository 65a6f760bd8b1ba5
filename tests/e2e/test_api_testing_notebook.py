"""Notebook 02 runs top to bottom against a real server, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_service import ServerProcess

from notebook_runner import run_notebook, stream_text

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_api_testing.ipynb"


@pytest.mark.slow
def test_notebook_runs_against_the_service(
    served_tiny_model: ServerProcess,
    python3_kernel: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANOMALY_API_URL", served_tiny_model.url)  # the kernel inherits it
    outputs = run_notebook(NOTEBOOK, python3_kernel, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    text = stream_text(outputs)
    assert f"service: {served_tiny_model.url}" in text
    assert "sensor_42_t1235: ANOMALY" in text
    assert "identical to the first answer" in text
    assert "anomalies among the far readings" in text
    assert "NaN token     400 invalid_json" in text
    assert "cache hit: p50" in text
    # The client section: every call ran against the real server.
    assert "client health: ok" in text
    assert "client model_info: " in text
    assert "client predict: anomaly=True" in text
    assert "client predict_many: 2500 rows in 3 calls" in text
    assert "client score_frame:" in text
    assert "client predict_window (point-wise): [False, False, True, False]" in text
    assert "client send_readings: total 4" in text
    assert "client older reading: 409 stream_order" in text
    assert "client after reset_stream: 404 stream_not_found" in text
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)
