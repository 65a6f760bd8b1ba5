"""Ratios, targets and the printed table of one benchmark run."""

from __future__ import annotations

from typing import Any

CONNECTIONS = (1, 16, 64)


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Service ÷ bare endpoint and fast ÷ reference, which move less than absolute numbers."""
    http = results["http_predict"]
    out: dict[str, float] = {}
    for c in CONNECTIONS:
        bare, fast, ref = http["bare"][str(c)], http["fast"][str(c)], http["sklearn"][str(c)]
        out[f"fast_vs_bare_rps_c{c}"] = fast["requests_per_s"] / bare["requests_per_s"]
        out[f"fast_vs_bare_p99_c{c}"] = fast["p99_ms"] / bare["p99_ms"]
        out[f"fast_vs_sklearn_rps_c{c}"] = fast["requests_per_s"] / ref["requests_per_s"]
        numpy = http["numpy"][str(c)]
        out[f"numpy_vs_bare_rps_c{c}"] = numpy["requests_per_s"] / bare["requests_per_s"]
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


def table(results: dict[str, Any]) -> str:
    """The run as Markdown tables (readable in a terminal, pasted into the README)."""
    http = results["http_predict"]
    lines = ["| /predict (cache miss) | conns | req/s | p50 ms | p99 ms | errors |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, label in (
        ("bare", "bare FastAPI"),
        ("fast", "service, fast"),
        ("sklearn", "service, scikit-learn"),
    ):
        for c in CONNECTIONS:
            row = http[name][str(c)]
            lines.append(
                f"| {label} | {c} | {_f(row['requests_per_s'])} | {_f(row['p50_ms'])} "
                f"| {_f(row['p99_ms'])} | {row['errors']} |"
            )
    lines += [
        "",
        "| model scoring (in-process) | fast ms | numpy ms | scikit-learn ms "
        "| speed-up fast / numpy |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, row in results["model_scoring"].items():
        lines.append(
            f"| {n} rows | {_f(row['fast_ms'])} | {_f(row['numpy_ms'])} "
            f"| {_f(row['reference_ms'])} | {_f(row['speedup'])} x / {_f(row['numpy_speedup'])} x |"
        )
    batch, split = results["batch"], results["batch"]["split"]
    lines += [
        "",
        "| /predict/batch, 1,000 rows, 1 connection | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for name in ("fast", "numpy", "sklearn"):
        lines.append(
            f"| service, {name} | {_f(batch[name]['p50_ms'])} | {_f(batch[name]['p99_ms'])} |"
        )
    lines.append(
        f"| split (in-process): parse {_f(split['parse_ms'])} + validate {_f(split['validate_ms'])}"
        f" + matrix {_f(split['to_matrix_ms'])} + score {_f(split['score_fast_ms'])} "
        f"(scikit-learn {_f(split['score_reference_ms'])}) | | |"
    )
    lines += [
        "",
        "| cache, /predict, 1 connection | p50 ms | p99 ms | req/s |",
        "|---|---:|---:|---:|",
    ]
    for backend, runs in results["cache"].items():
        for kind in ("miss", "hit"):
            row = runs[kind]
            lines.append(
                f"| {backend} {kind} | {_f(row['p50_ms'])} | {_f(row['p99_ms'])} "
                f"| {_f(row['requests_per_s'])} |"
            )
    lines += [
        "",
        "| server | start → ready s | RSS ready MB | RSS after the run MB |",
        "|---|---:|---:|---:|",
    ]
    for name, row in results["servers"].items():
        lines.append(
            f"| {name} | {_f(row['start_to_ready_s'])} | {_f(row['rss_ready_mb'])} "
            f"| {_f(row['rss_after_load_mb'])} |"
        )
    lines += ["", *hot_path_table(results["hot_path"])]
    lines += ["", "| target | limit | measured | met |", "|---|---:|---:|---|"]
    for t in results["targets"]:
        lines.append(
            f"| {t['target']} | {t['op']} {_f(t['limit'])} | {_f(t['value'])} "
            f"| {'yes' if t['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def hot_path_table(hot: dict[str, Any]) -> list[str]:
    """Event loop vs thread pool, JSON parsers and the cache's own cost."""
    one, parse = hot["predictor_one_row"], hot["json_parse_batch"]
    loop, thread = hot["single_rows_on_loop_c64"], hot["single_rows_in_thread_c64"]
    in_thread, on_loop = (
        hot["single_row_while_batches_in_thread"],
        hot["single_row_while_batches_on_loop"],
    )
    return [
        "| hot path | measured |",
        "|---|---|",
        f"| 1 row through Predictor (in-process cache), µs | miss {_f(one['miss_us'])}, "
        f"hit {_f(one['hit_us'])}, scoring alone {_f(one['score_only_us'])} |",
        f"| 1,000 rows through Predictor, ms | scoring + Prediction objects "
        f"{_f(one['batch_score_ms'])}, cache keys {_f(one['batch_cache_keys_ms'])}, "
        f"whole predict (cache misses) {_f(one['batch_predict_miss_ms'])} |",
        f"| parse a 1,000-row body, ms | json {_f(parse['stdlib_json_ms'])}, "
        f"orjson {_f(parse['orjson_ms'])} |",
        f"| /predict at 64 conns, req/s (p99 ms) | on the event loop {_f(loop['requests_per_s'])} "
        f"({_f(loop['p99_ms'])}), in a thread {_f(thread['requests_per_s'])} "
        f"({_f(thread['p99_ms'])}) |",
        f"| /predict at 1 conn while 1,000-row batches run, p50 / p99 ms | batches in a thread "
        f"{_f(in_thread['p50_ms'])} / {_f(in_thread['p99_ms'])}, on the loop "
        f"{_f(on_loop['p50_ms'])} / {_f(on_loop['p99_ms'])} |",
    ]
