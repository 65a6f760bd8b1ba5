"""An interrupted ``anomaly-api score`` leaves nothing under the output's name.

"Mid-run" is made certain, not hoped for: once the partial output exists the run is
stopped (SIGSTOP), found still unfinished (alive, no output yet), sent the signal and only
then continued, so it handles the signal before it can commit, however fast the machine.
The child starts with SIGINT's default action: a test run from a shell's background job
inherits SIGINT ignored, and an ignored signal would let the run finish.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from bulk.conftest import readings, score_command

DEADLINE_S = 120


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _state(pid: int) -> str:
    """The process's state letter (``T``: stopped, ``Z``: exited), from /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _stopped_mid_run(data: Path, out: Path, artifacts: Path) -> subprocess.Popen[str] | None:
    """A run of ``score`` stopped after it began writing and before it committed, or None
    when it finished before it could be stopped."""
    process = subprocess.Popen(
        score_command(data, out, "--artifacts-dir", str(artifacts), "--chunk-rows", "2000",
                      "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 (one async-signal-safe call)
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE_S
    while not list(out.parent.glob(f".{out.name}.*.partial")):  # scoring has started
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.01)
    process.send_signal(signal.SIGSTOP)
    while _state(process.pid) not in ("T", "Z"):  # the stop takes effect (or it had exited)
        assert time.monotonic() < deadline, "the run never stopped"
        time.sleep(0.01)
    if out.exists():  # it committed before the stop: try again with more rows
        process.send_signal(signal.SIGCONT)
        process.communicate(timeout=60)
        return None
    return process


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_mid_run_leaves_no_output(
    artifacts: Path, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    out = tmp_path / "out.parquet"
    process = None
    for rows in (400_000, 1_600_000):
        data = tmp_path / f"in-{rows}.parquet"
        readings(rows, seed=1).to_parquet(data, index=False, row_group_size=2_000)
        process = _stopped_mid_run(data, out, artifacts)
        if process is not None:
            break
        out.unlink()
    assert process is not None, "every run finished before it could be stopped"
    try:
        assert process.poll() is None  # stopped, not finished
        process.send_signal(signum)  # pending until the run continues
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"error: {word}; no output written"
    assert "scored" not in stdout
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial"))
