"""Ratios, targets and the Markdown tables of one benchmark run.

``python -m bench.report [RESULTS.json]`` rebuilds a run's Markdown from its JSON."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import orjson

CONNECTIONS = (1, 16, 64)
STATE_BYTES_LIMIT = 4096
"""The state per stream's limit: 4 KB for 8 channels and a 60-reading window."""


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator measured nothing."""
    return numerator / denominator if denominator else float("nan")


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Service ÷ bare endpoint and fast ÷ reference (empty without ``predict``)."""
    if "http_predict" not in results or "model_scoring" not in results:
        return {}
    http = results["http_predict"]
    out: dict[str, float] = {}
    for c in CONNECTIONS:
        bare, fast, ref = http["bare"][str(c)], http["fast"][str(c)], http["sklearn"][str(c)]
        out[f"fast_vs_bare_rps_c{c}"] = ratio(fast["requests_per_s"], bare["requests_per_s"])
        out[f"fast_vs_bare_p99_c{c}"] = ratio(fast["p99_ms"], bare["p99_ms"])
        out[f"fast_vs_sklearn_rps_c{c}"] = ratio(fast["requests_per_s"], ref["requests_per_s"])
        numpy = http["numpy"][str(c)]
        out[f"numpy_vs_bare_rps_c{c}"] = ratio(numpy["requests_per_s"], bare["requests_per_s"])
    for n, row in results["model_scoring"].items():
        out[f"scoring_speedup_{n}_rows"] = row["speedup"]
        out[f"scoring_speedup_numpy_{n}_rows"] = row["numpy_speedup"]
    batch = results["batch"]
    out["batch_sklearn_vs_fast_p50"] = ratio(batch["sklearn"]["p50_ms"], batch["fast"]["p50_ms"])
    return out


def _get(results: dict[str, Any], *keys: str) -> float | None:
    """``results[k1][k2]...``, or None when a section did not run (``--only``)."""
    value: Any = results
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


TARGETS: list[tuple[str, str, str, float, tuple[str, ...]]] = [
    ("13", "/predict rps ÷ bare at 64 connections", ">=", 0.70,
     ("ratios", "fast_vs_bare_rps_c64")),
    ("13", "/predict p99 ÷ bare p99 at 64 connections", "<=", 2.0,
     ("ratios", "fast_vs_bare_p99_c64")),
    ("21", "--workers 2 rps ÷ bare with 2 workers at 64 connections", ">=", 0.7,
     ("scaling", "workers_c64", "ours_2_vs_bare_2")),
    ("21", "--workers 2 rps ÷ one worker of ours at 64 connections", ">=", 1.5,
     ("scaling", "workers_c64", "ours_2_vs_ours_1")),
    ("13", "scoring speed-up, 1 row", ">=", 50.0, ("ratios", "scoring_speedup_1_rows")),
    ("13", "scoring speed-up, 1,000 rows", ">=", 2.5, ("ratios", "scoring_speedup_1000_rows")),
    ("13", "/predict/batch 1,000 rows p50 (ms)", "<=", 12.0, ("batch", "fast", "p50_ms")),
    ("13", "RSS after model load (MB)", "<=", 250.0, ("servers", "fast", "rss_ready_mb")),
    ("13", "start to ready (s)", "<=", 2.0, ("servers", "fast", "start_to_ready_s")),
    ("10", "stream readings ÷ /predict at 64 connections, in-process store", ">=", 0.5,
     ("streams", "ratio_memory")),
    ("10", "stream readings ÷ /predict at 64 connections, Redis store", ">=", 0.35,
     ("streams", "ratio_redis")),
    ("10", "/predict/window 1,000 readings p50 (ms)", "<=", 30.0,
     ("streams", "window_1000", "p50_ms")),
    ("10", "state per stream, in-process store (bytes)", "<=", STATE_BYTES_LIMIT,
     ("streams", "state_per_stream", "memory", "heap_per_stream")),
    ("10", "state per stream, Redis (bytes)", "<=", STATE_BYTES_LIMIT,
     ("streams", "state_per_stream", "redis", "used_memory_per_stream")),
    ("11", "local bulk scoring, rows/s per core", ">=", 40_000.0,
     ("bulk", "local", "rows_s_per_core")),
    ("11", "Dask 2-worker local cluster ÷ local, same file", ">=", 0.7,
     ("bulk", "dask_2_workers", "ratio_to_local")),
    ("11", "client predict_many ÷ server batch throughput", ">=", 0.8,
     ("bulk", "client_vs_server", "ratio")),
    ("12", "/predict rps, drift on ÷ off at 64 connections (overhead ≤ 5%)", ">=", 0.95,
     ("drift_overhead", "ratio_median")),
    ("19", "1,000 models: RSS growth ÷ model memory budget", "<=", 1.0,
     ("fleet", "rss_growth_vs_budget")),
    ("19", "1,000 models: cold model's first request p50 (ms)", "<=", 100.0,
     ("fleet", "cold_first_request_p50_ms")),
]  # fmt: skip
"""Every open performance target: its issue, what, comparison, limit, where its value is."""


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and whether it is met (None when not run)."""
    rows = []
    for issue, name, op, limit, path in TARGETS:
        value = _get(results, *path)
        met = None
        if value is not None and math.isfinite(value):
            met = value >= limit if op == ">=" else value <= limit
        rows.append(
            {"issue": issue, "target": name, "op": op, "limit": limit, "value": value, "met": met}
        )
    return rows


def _f(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _load(run: dict[str, Any]) -> list[str]:
    return [_f(run["requests_per_s"]), _f(run["p50_ms"]), _f(run["p99_ms"])]


BACKEND_LABELS = {"bare": "bare FastAPI", "fast": "service, fast", "numpy": "service, numpy",
                  "sklearn": "service, scikit-learn"}  # fmt: skip


def table(results: dict[str, Any]) -> str:
    """The run as Markdown tables: each section that ran, then every target."""
    lines = [run_line(results["meta"]), ""]
    if "http_predict" in results and "model_scoring" in results:
        lines += predict_tables(results)
    streams = results.get("streams", {})
    if "ratio_memory" in streams and "state_per_stream" in streams:
        lines += streams_table(streams)
    lines += flat_table("streams", {k: v for k, v in streams.items() if k.startswith("watch")})
    flat = ("scaling", "by_name", "fleet", "bulk", "drift_overhead", "drift_tracker", "kernel")
    for key in (*flat, "cost", "quality"):
        lines += flat_table(key, results.get(key, {}))
    lines += targets_table(results["targets"])
    for section, error in results.get("failed_sections", {}).items():
        lines += [f"Section `{section}` failed: `{error}`.", ""]
    return "\n".join(lines).rstrip("\n")


def run_line(meta: dict[str, Any]) -> str:
    """Which run the tables are: mode, sections, commit, time, machine and its load."""
    before = ", ".join(f"{x:.1f}" for x in meta["load_average_before"])
    after = ", ".join(f"{x:.1f}" for x in meta.get("load_average_after", ()))
    sections = ", ".join(meta.get("parts", meta.get("sections", ("predict",))))
    return (
        f"Run: `python -m bench` ({meta['mode']}; sections {sections}), commit "
        f"`{meta['commit']}`, {meta['started_at']}, {meta['cpus']} CPUs, Python "
        f"{meta['python']}; load average before {before}, after {after}."
    )


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    """Every target with its issue, limit, measured value and whether it is met."""

    def shown(value: float | None) -> str:
        return "not measured" if value is None else _f(value)

    def met(value: bool | None) -> str:
        return "(not run)" if value is None else "yes" if value else "**no**"

    return _markdown(
        ["target", "issue", "limit", "measured", "met"],
        [
            [t["target"], t.get("issue", "13"), f"{t['op']} {_f(t['limit'])}", shown(t["value"]),
             met(t["met"])]
            for t in rows
        ],
    )  # fmt: skip


def streams_table(streams: dict[str, Any]) -> list[str]:
    """Stream endpoints over HTTP against /predict, and the bytes of a stream."""
    state = streams["state_per_stream"]  # bytes: window array, heap, Redis value and growth
    rows = [
        [f"/predict (point-wise), {streams['connections']} conns", *_load(streams["predict"]),
         "1"],
        ["/streams/{id}/readings, in-process store", *_load(streams["streams_memory"]),
         _f(streams["ratio_memory"])],
        ["/streams/{id}/readings, Redis store", *_load(streams["streams_redis"]),
         _f(streams["ratio_redis"])],
    ]  # fmt: skip
    lines = _markdown(["streams over HTTP, wrk -t64 -c64", "req/s", "p50 ms", "p99 ms",
                       "÷ /predict"], rows)  # fmt: skip
    windows = [
        [f"/predict/window, 1,000 readings, mode={mode}", _f(run["p50_ms"]), _f(run["p99_ms"]),
         _f(run["server_inference_ms_p50"])]
        for mode, run in (("last", streams["window_1000"]), ("all", streams["window_1000_all"]))
    ]  # fmt: skip
    lines += _markdown(["1 connection", "p50 ms", "p99 ms", "server inference_ms"], windows)
    fail_open = {"Redis run: answers served fail-open (`degraded`; only 0 is a clean Redis run)":
                 streams["streams_redis"].get("degraded_answers")}  # fmt: skip
    return lines + flat_table("one stream, 8 channels x 60 readings", {**state, **fail_open})


def predict_tables(results: dict[str, Any]) -> list[str]:
    """/predict and batches per backend, scoring, cache, servers."""
    http, batch, split = results["http_predict"], results["batch"], results["batch"]["split"]
    lines = _markdown(
        ["/predict (cache miss)", "conns", "req/s", "p50 ms", "p99 ms", "errors"],
        [
            [label, str(c), *_load(http[name][str(c)]), str(http[name][str(c)]["errors"])]
            for name, label in BACKEND_LABELS.items()
            for c in CONNECTIONS
        ],
    )
    lines += _markdown(
        ["model scoring (in-process)", "fast ms", "numpy ms", "scikit-learn ms", "speed-up"],
        [
            [f"{n} rows", _f(r["fast_ms"]), _f(r["numpy_ms"]), _f(r["reference_ms"]),
             f"{_f(r['speedup'])} x / {_f(r['numpy_speedup'])} x"]
            for n, r in results["model_scoring"].items()
        ],
    )  # fmt: skip
    lines += _markdown(
        ["/predict/batch, 1,000 rows, 1 connection", "p50 ms", "p99 ms", "server inference_ms"],
        [
            [BACKEND_LABELS[name], _f(batch[name]["p50_ms"]), _f(batch[name]["p99_ms"]),
             _f(batch[name]["server_inference_ms_p50"])]
            for name in ("fast", "numpy", "sklearn")
        ],
    )  # fmt: skip
    lines += [
        f"In-process split of one batch (ms): parse {_f(split['parse_ms'])}, validate "
        f"{_f(split['validate_ms'])}, to matrix {_f(split['to_matrix_ms'])}, score "
        f"{_f(split['score_fast_ms'])} (scikit-learn {_f(split['score_reference_ms'])}).",
        "",
    ]
    lines += _markdown(
        ["cache, /predict, 1 connection", "req/s", "p50 ms", "p99 ms"],
        [
            [f"{backend} {kind}", *_load(runs[kind])]
            for backend, runs in results["cache"].items()
            for kind in ("miss", "hit")
        ],
    )
    lines += _markdown(
        ["server", "start → ready s", "RSS ready MB", "RSS after the run MB"],
        [
            [name, _f(r["start_to_ready_s"]), _f(r["rss_ready_mb"]), _f(r["rss_after_load_mb"])]
            for name, r in results["servers"].items()
        ],
    )
    return lines


def flat_table(title: str, data: dict[str, Any]) -> list[str]:
    """A section's numbers as one two-column table, nested keys joined by " / "."""
    rows: list[list[str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix} / {key}" if prefix else str(key), item)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            shown = (
                value if not isinstance(value, list) or len(value) <= 8 else f"{len(value)} values"
            )
            rows.append([prefix, f"`{shown}`" if not isinstance(shown, str) else shown])
        else:
            rows.append([prefix, _f(value) if math.isfinite(value) else str(value)])

    walk("", data)
    return _markdown([title, "measured"], rows) if rows else []


def write_results(out: Path, results: dict[str, Any], text: str) -> None:
    """Write the JSON and ``text`` beside it (``.md``), then print ``text``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    out.with_suffix(".md").write_text(text + "\n")
    print(f"{text}\nwrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Rebuild a run's Markdown from its JSON (targets recomputed with today's list)."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    results: dict[str, Any] = orjson.loads(source.read_bytes())
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    markdown = source.with_suffix(".md")
    markdown.write_text(table(results) + "\n")
    print(f"wrote {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
