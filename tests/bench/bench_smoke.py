"""Run the benchmark's quick pass in a child process, as the smoke tests do (no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(names: list[str], out: Path, timeout_s: float) -> tuple[dict[str, Any], str]:
    """``python -m bench --smoke NAMES --out OUT`` from the repository root: its JSON and
    stdout. Fails the test, with the end of stderr, when the benchmark exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", *names, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results, done.stdout
