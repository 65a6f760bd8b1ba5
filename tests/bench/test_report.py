"""The benchmark's report and command line: every target listed, sections and parts chosen
by name, the Markdown rebuilt from a run's JSON (no measuring, no timing)."""

from __future__ import annotations

from pathlib import Path

import bench.__main__ as bench_main
import pytest
from bench.__main__ import DEFAULT, SECTIONS, Context, parse_names, parts_of
from bench.report import main as rebuild_markdown
from bench.report import targets

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_every_open_target_is_listed_unmeasured_when_its_section_did_not_run() -> None:
    rows = targets({})
    assert len(rows) == 20
    issues = ("10", "11", "12", "13", "19")
    by_issue = {issue: sum(r["issue"] == issue for r in rows) for issue in issues}
    assert by_issue == {"10": 5, "11": 3, "12": 1, "13": 7, "19": 2}
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


def test_names_choose_sections_and_parts_in_the_suites_order() -> None:
    assert parse_names(["drift.overhead", "predict"], smoke=False) == [
        ("predict", "inprocess"), ("predict", "http"), ("predict", "scaling"),
        ("predict", "by_name"), ("predict", "fleet"), ("drift", "overhead")
    ]  # fmt: skip
    assert {s for s, _ in parse_names([], smoke=False)} == set(DEFAULT)
    assert {s for s, _ in parse_names([], smoke=True)} == set(SECTIONS)
    assert parse_names(["cost.request", "cost"], smoke=True) == [
        ("cost", part) for part in parts_of("cost")
    ]
    for wrong in ("nope", "cost.nope"):
        with pytest.raises(SystemExit, match="unknown"):
            parse_names([wrong], smoke=False)


def test_an_option_takes_its_defaults_type(tmp_path: Path) -> None:
    ctx = Context(True, tmp_path, options={"seeds": "3", "tep_fpr": "0.05"})
    assert ctx.option("seeds", 10) == 3
    assert ctx.option("tep_fpr", 0.02) == 0.05
    assert ctx.option("detector", "top4_z") == "top4_z"
    assert ctx.size(1, 10) == 1


def test_the_markdown_is_rebuilt_from_a_runs_json(tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text((RESULTS / "latest.json").read_text())
    assert rebuild_markdown([str(source)]) == 0
    markdown = source.with_suffix(".md").read_text()
    assert markdown.startswith("Run: `python -m bench`")
    assert "| target | issue | limit | measured | met |" in markdown
    assert all(row["target"] in markdown for row in targets({}))


def test_a_failed_part_is_recorded_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(_ctx: Context) -> dict[str, object]:
        raise RuntimeError("redis-server is missing")

    parts = {"streams": {"http": broken}, "drift": {"overhead": lambda _c: {
        "drift_overhead": {"ratio_median": 0.97}}}}  # fmt: skip
    monkeypatch.setattr(bench_main, "parts_of", parts.__getitem__)
    results = bench_main.run(Context(True, tmp_path), [("streams", "http"), ("drift", "overhead")])
    assert results["failed_sections"] == {"streams.http": "RuntimeError('redis-server is missing')"}
    assert "streams" not in results
    measured = {t["target"]: t for t in results["targets"] if t["value"] is not None}
    assert list(measured) == ["/predict rps, drift on ÷ off at 64 connections (overhead ≤ 5%)"]
