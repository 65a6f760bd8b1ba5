"""An interrupted ``anomaly-api score`` leaves nothing under the output's name."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from bulk.conftest import readings, score_command


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_mid_run_leaves_no_output(
    artifacts: Path, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    data = tmp_path / "in.parquet"
    readings(400_000, seed=1).to_parquet(data, index=False, row_group_size=2_000)
    out = tmp_path / "out.parquet"
    process = subprocess.Popen(
        score_command(
            data,
            out,
            "--artifacts-dir",
            str(artifacts),
            "--chunk-rows",
            "2000",
            "--no-progress",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.parquet.*.partial")):  # scoring has started
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"error: {word}; no output written"
    assert "scored" not in stdout
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial"))
