"""The dependency audit's verdicts on pip-audit JSON reports (the database is not needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dep(name: str, *vulns: dict[str, object]) -> dict[str, object]:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def test_fixable_vulnerability_fails() -> None:
    report = {
        "dependencies": [
            _dep("ok"),
            _dep("bad", {"id": "PYSEC-1", "fix_versions": ["1.1"]}),
            _dep("open", {"id": "GHSA-2", "fix_versions": []}),
        ]
    }
    code, lines = _script().summarize(report, "pypi", 0)
    assert code == 1
    assert "  bad==1.0: PYSEC-1 (fixed in 1.1)" in lines
    assert "warning: open==1.0: GHSA-2 (no fix released)" in lines


def test_unfixed_only_passes_with_a_warning() -> None:
    report = {"dependencies": [_dep("open", {"id": "GHSA-2", "fix_versions": []})]}
    code, lines = _script().summarize(report, "pypi", 0)
    assert code == 0
    assert lines[0].startswith("warning: open==1.0")


def test_unreachable_database_is_reported_not_passed() -> None:
    report = {"dependencies": [{"name": "x", "version": "1", "skip_reason": "not found"}]}
    code, lines = _script().summarize(report, "pypi", 2)
    assert code == 2
    assert lines[0].startswith("AUDIT NOT RUN")
    assert not any("passed" in line for line in lines)
