"""Ratios, targets and the printed table of one benchmark run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

CONNECTIONS = (1, 16, 64)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when the denominator measured nothing (a smoke run
    on a loaded machine can finish zero requests), so the report still prints."""
    return numerator / denominator if denominator else float("nan")


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Service ÷ bare endpoint and fast ÷ reference, which move less than absolute numbers."""
    http = results["http_predict"]
    out: dict[str, float] = {}
    for c in CONNECTIONS:
        bare, fast, ref = http["bare"][str(c)], http["fast"][str(c)], http["sklearn"][str(c)]
        out[f"fast_vs_bare_rps_c{c}"] = _ratio(fast["requests_per_s"], bare["requests_per_s"])
        out[f"fast_vs_bare_p99_c{c}"] = _ratio(fast["p99_ms"], bare["p99_ms"])
        out[f"fast_vs_sklearn_rps_c{c}"] = _ratio(fast["requests_per_s"], ref["requests_per_s"])
        numpy = http["numpy"][str(c)]
        out[f"numpy_vs_bare_rps_c{c}"] = _ratio(numpy["requests_per_s"], bare["requests_per_s"])
    for n, row in results["model_scoring"].items():
        out[f"scoring_speedup_{n}_rows"] = row["speedup"]
        out[f"scoring_speedup_numpy_{n}_rows"] = row["numpy_speedup"]
    batch = results["batch"]
    out["batch_sklearn_vs_fast_p50"] = batch["sklearn"]["p50_ms"] / batch["fast"]["p50_ms"]
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 with the measured value and whether it is met."""
    r = results["ratios"]
    servers = results["servers"]
    rows = [
        ("/predict rps ÷ bare at 64 connections", ">=", 0.70, r["fast_vs_bare_rps_c64"]),
        ("/predict p99 ÷ bare p99 at 64 connections", "<=", 2.0, r["fast_vs_bare_p99_c64"]),
        ("scoring speed-up, 1 row", ">=", 50.0, r["scoring_speedup_1_rows"]),
        ("scoring speed-up, 1,000 rows", ">=", 2.5, r["scoring_speedup_1000_rows"]),
        ("/predict/batch 1,000 rows p50 (ms)", "<=", 12.0, results["batch"]["fast"]["p50_ms"]),
        ("RSS after model load (MB)", "<=", 250.0, servers["fast"]["rss_ready_mb"]),
        ("start to ready (s)", "<=", 2.0, servers["fast"]["start_to_ready_s"]),
    ]
    return [
        {
            "target": name,
            "op": op,
            "limit": limit,
            "value": value,
            "met": value >= limit if op == ">=" else value <= limit,
        }
        for name, op, limit, value in rows
    ]


def _f(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _load(run: dict[str, Any]) -> list[str]:
    return [_f(run["requests_per_s"]), _f(run["p50_ms"]), _f(run["p99_ms"])]


BACKEND_LABELS = {
    "bare": "bare FastAPI",
    "fast": "service, fast (C kernel)",
    "numpy": "service, numpy",
    "sklearn": "service, scikit-learn",
}


def table(results: dict[str, Any]) -> str:
    """The run as Markdown tables (readable in a terminal, pasted into docs/performance.md)."""
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
    lines += hot_path_table(results["hot_path"])
    lines += _markdown(
        ["target", "limit", "measured", "met"],
        [
            [t["target"], f"{t['op']} {_f(t['limit'])}", _f(t["value"]),
             "yes" if t["met"] else "**no**"]
            for t in results["targets"]
        ],
    )  # fmt: skip
    return "\n".join(lines).rstrip("\n")


def hot_path_table(hot: dict[str, Any]) -> list[str]:
    """Event loop vs thread pool, JSON parsers and the cache's own cost."""
    one, parse = hot["predictor_one_row"], hot["json_parse_batch"]
    loop, thread = hot["single_rows_on_loop_c64"], hot["single_rows_in_thread_c64"]
    in_thread = hot["single_row_while_batches_in_thread"]
    on_loop = hot["single_row_while_batches_on_loop"]
    return _markdown(
        ["hot path", "measured"],
        [
            ["1 row through Predictor (in-process cache), µs",
             f"miss {_f(one['miss_us'])}, hit {_f(one['hit_us'])}, "
             f"scoring alone {_f(one['score_only_us'])}"],
            ["1,000 rows through Predictor, ms",
             f"scoring + Prediction objects {_f(one['batch_score_ms'])}, cache keys "
             f"{_f(one['batch_cache_keys_ms'])}, whole predict (misses) "
             f"{_f(one['batch_predict_miss_ms'])}"],
            ["parse a 1,000-row body, ms",
             f"json {_f(parse['stdlib_json_ms'])}, orjson {_f(parse['orjson_ms'])}"],
            ["/predict at 64 conns, req/s (p99 ms)",
             f"on the event loop {_f(loop['requests_per_s'])} ({_f(loop['p99_ms'])}), "
             f"in a thread {_f(thread['requests_per_s'])} ({_f(thread['p99_ms'])})"],
            ["/predict at 1 conn while 1,000-row batches run, p50 / p99 ms",
             f"batches in a thread {_f(in_thread['p50_ms'])} / {_f(in_thread['p99_ms'])}, "
             f"on the loop {_f(on_loop['p50_ms'])} / {_f(on_loop['p99_ms'])}"],
        ],
    )  # fmt: skip


def write_results(out: Path, results: dict[str, Any], text: str) -> None:
    """Write ``results`` as indented JSON to ``out``, then print ``text``, the load
    averages of ``results["meta"]`` and where the file went."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(text)
    meta = results["meta"]
    print(
        f"\nload average before {meta['load_average_before']}, after {meta['load_average_after']}"
    )
    print(f"wrote {out}")
