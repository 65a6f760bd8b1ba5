"""`make tools` names what the tests need and is missing, when it may not install it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_tools_are_named_when_not_root(tmp_path: Path) -> None:
    # A PATH with nothing but a non-root `id`: every tool is missing and apt-get is not used.
    fake_id = tmp_path / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, str(ROOT / "scripts" / "ensure_tools.sh")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    for package in ("redis-server", "curl", "kubectl", "wrk", "chromium", "prometheus", "iproute2"):
        assert package in line
    assert "apt-get install" in line


def test_present_tools_are_left_alone() -> None:
    # On this machine (CI installs them first) everything is there: nothing to install.
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_tools.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stderr
