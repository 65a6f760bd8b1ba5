#!/usr/bin/env python3
"""Dependency audit: pip-audit over the exact versions installed from ``pyproject.toml``.

The environment's ``pip freeze`` (editable project excluded) is audited as pinned
requirements, without resolving anything. Exit status:

* 1 when a dependency has a known vulnerability with a fixed version (listed);
* 0 when none has, including vulnerabilities that have no fix yet (listed as warnings);
* 0 with ``AUDIT NOT RUN`` when the vulnerability database cannot be reached (no network,
  or every dependency unknown to it), so a machine without that access is told, not
  misled; ``--require`` makes that exit 2 instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def frozen_requirements() -> str:
    """``name==version`` of every installed distribution except the project itself."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    return "\n".join(
        line for line in result.stdout.splitlines() if "==" in line and " @ " not in line
    )


def run_pip_audit(requirements: Path, service: str) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report, or None and the reason it could not produce one."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps"]
    command += ["--disable-pip", "-f", "json", "--progress-spinner", "off", "-s", service]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"pip-audit exited {result.returncode}"
    return report, ""


def summarize(report: dict[str, Any], service: str, not_run: int) -> tuple[int, list[str]]:
    """Exit status and report lines for pip-audit's JSON ``report``."""
    lines: list[str] = []
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [d for d in dependencies if "skip_reason" in d]
    if not audited:
        example = skipped[0]["skip_reason"] if skipped else "no dependencies reported"
        lines.append(
            f"AUDIT NOT RUN: the {service} vulnerability database could not be used "
            f"for any of {len(dependencies)} dependencies (e.g. {example})"
        )
        return not_run, lines
    fixable, unfixed = [], []
    for dep in audited:
        for vuln in dep.get("vulns", []):
            line = f"{dep['name']}=={dep['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                fixable.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                unfixed.append(f"{line} (no fix released)")
    lines += [f"warning: {line}" for line in unfixed]
    if skipped:
        names = ", ".join(d["name"] for d in skipped)
        lines.append(f"note: {len(skipped)} dependencies not audited: {names}")
    if fixable:
        lines.append("known vulnerabilities with a fix (upgrade the pins in pyproject.toml):")
        lines += [f"  {line}" for line in fixable]
        return 1, lines
    lines.append(f"audit passed: {len(audited)} dependencies, no known vulnerability with a fix")
    return 0, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", default="pypi", choices=["pypi", "osv"])
    parser.add_argument("--require", action="store_true", help="exit 2 when it cannot run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(frozen_requirements() + "\n")
        report, reason = run_pip_audit(requirements, args.service)
    not_run = 2 if args.require else 0
    if report is None:
        print(f"AUDIT NOT RUN: pip-audit failed: {reason}")
        return not_run
    code, lines = summarize(report, args.service, not_run)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
