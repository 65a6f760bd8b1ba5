"""The benchmark's report: every target listed, sections chosen with ``--only``, the
Markdown rebuilt from a run's JSON (no measuring, no timing)."""

from __future__ import annotations

import argparse
from pathlib import Path

import bench.__main__ as bench_main
import pytest
from bench.__main__ import SECTIONS, parse_sections
from bench.report import main as rebuild_markdown
from bench.report import targets

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_every_open_target_is_listed_unmeasured_when_its_section_did_not_run() -> None:
    rows = targets({})
    assert len(rows) == 16
    by_issue = {issue: sum(r["issue"] == issue for r in rows) for issue in ("10", "11", "12", "13")}
    assert by_issue == {"10": 5, "11": 3, "12": 1, "13": 7}
    assert all(r["value"] is None and r["met"] is None for r in rows)


def test_a_target_is_met_by_its_limit_and_a_nan_is_not_judged() -> None:
    results = {
        "drift_overhead": {"ratio_median": 0.95},
        "bulk": {"local": {"rows_s_per_core": 1.0}},
    }
    rows = {r["target"]: r for r in targets(results)}
    assert rows["/predict rps, drift on ÷ off at 64 connections (overhead ≤ 5%)"]["met"] is True
    assert rows["local bulk scoring, rows/s per core"]["met"] is False
    nan = targets({"drift_overhead": {"ratio_median": float("nan")}})
    assert all(r["met"] is None for r in nan)


def test_only_takes_known_sections_in_the_benchmarks_order() -> None:
    assert parse_sections("drift, predict") == ("predict", "drift")
    assert parse_sections(",".join(SECTIONS)) == SECTIONS
    with pytest.raises(argparse.ArgumentTypeError, match="unknown section"):
        parse_sections("predict,nope")


def test_the_markdown_is_rebuilt_from_a_runs_json(tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text((RESULTS / "latest.json").read_text())
    assert rebuild_markdown([str(source)]) == 0
    markdown = source.with_suffix(".md").read_text()
    assert markdown.startswith("Run: `python -m bench`")
    assert "| target | issue | limit | measured | met |" in markdown
    assert all(row["target"] in markdown for row in targets({}))


def test_a_failed_section_is_recorded_and_leaves_no_half_measured_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_main, "prepare_artifact", lambda _path: None)
    run = bench_main.Run(True, tmp_path, sections=("streams", "drift"))

    def broken() -> None:
        run.results["streams"] = {"ratio_memory": 0.6}
        raise RuntimeError("redis-server is missing")

    def drift() -> None:
        run.results["drift_overhead"] = {"ratio_median": 0.97}

    monkeypatch.setattr(run, "streams", broken)
    monkeypatch.setattr(run, "drift", drift)
    results = run.all()
    assert results["failed_sections"] == {"streams": "RuntimeError('redis-server is missing')"}
    assert "streams" not in results
    measured = {t["target"]: t for t in results["targets"] if t["value"] is not None}
    assert list(measured) == ["/predict rps, drift on ÷ off at 64 connections (overhead ≤ 5%)"]
