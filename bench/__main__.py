"""``python -m bench [SECTION[.PART] ...] [--smoke] [--set NAME=VALUE] [--out FILE]``

The benchmark suite, one part at a time, loopback only (docs/performance.md). No names: the
four target sections, to ``bench/results/latest.json``; ``--smoke``: every part, tiny sizes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from bench.data import RESULTS, ROOT, prepare_artifact, prepare_time_aware
from bench.report import ratios, table, targets, write_results

SECTIONS = ("predict", "streams", "bulk", "drift", "kernel", "cost", "quality")
DEFAULT = SECTIONS[:4]
T = TypeVar("T")
Opt = TypeVar("Opt", int, float, str)


@dataclass
class Context:
    """One run's settings and the models its sections share (fitted on first use)."""

    smoke: bool
    workdir: Path
    options: dict[str, str] = field(default_factory=dict)

    def size(self, smoke: T, full: T) -> T:
        """``smoke`` in a smoke run, else ``full``."""
        return smoke if self.smoke else full

    def option(self, name: str, default: Opt) -> Opt:
        """``--set NAME=VALUE`` as the default's type, else the default."""
        text = self.options.get(name)
        return default if text is None else type(default)(text)

    @cached_property
    def artifacts(self) -> Path:
        """The bench's default-size point-wise model."""
        path = self.workdir / "artifacts"
        prepare_artifact(path)
        return path

    @cached_property
    def time_aware(self) -> Path:
        """The default time-aware model."""
        path = self.workdir / "time-aware"
        prepare_time_aware(path, self.size(3000, 10_000))
        return path


Part = Callable[[Context], dict[str, Any]]


def parts_of(section: str) -> dict[str, Part]:
    """A section's parts, in order (each module's ``PARTS``)."""
    parts: dict[str, Part] = importlib.import_module(f"bench.{section}").PARTS
    return parts


def parse_names(names: list[str], smoke: bool) -> list[tuple[str, str]]:
    """``SECTION`` or ``SECTION.PART`` names as (section, part) pairs in the suite's order."""
    chosen = names or list(SECTIONS if smoke else DEFAULT)
    pairs = []
    for name in chosen:
        section, _, part = name.partition(".")
        if section not in SECTIONS:
            raise SystemExit(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
        known = parts_of(section)
        if part and part not in known:
            raise SystemExit(f"unknown part {name!r}; {section} has {', '.join(known)}")
        pairs += [(section, p) for p in ([part] if part else known)]
    order = {(s, p): i for i, (s, p) in enumerate((s, p) for s in SECTIONS for p in parts_of(s))}
    return sorted(set(pairs), key=order.__getitem__)


def merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Put a part's keys into the results; a section's parts share its dict."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        else:
            into[key] = value


def run(ctx: Context, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Every chosen part in turn (a failed part is recorded, the others still run), then
    the ratios and targets."""
    results: dict[str, Any] = {}
    for section, part in pairs:
        started = time.perf_counter()
        try:
            merge(results, parts_of(section)[part](ctx))
        except Exception as exc:  # the other parts' numbers are still worth writing
            traceback.print_exc()
            results.setdefault("failed_sections", {})[f"{section}.{part}"] = repr(exc)
        print(f"{section}.{part}: {time.perf_counter() - started:.0f} s", flush=True)
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    return results


def metadata(smoke: bool, pairs: list[tuple[str, str]], options: dict[str, str]) -> dict[str, Any]:
    """Where and when: the numbers only mean something next to the machine's load."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "mode": "smoke" if smoke else "full",
        "sections": list(dict.fromkeys(section for section, _ in pairs)),
        "parts": [f"{section}.{part}" for section, part in pairs],
        "options": options,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts, print the tables, write the JSON and its Markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("names", nargs="*", metavar="SECTION[.PART]", help="what to run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; numbers meaningless")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a part's option"
    )
    parser.add_argument("--out", type=Path, help="JSON file, with its .md beside it")
    args = parser.parse_args(argv)
    options = dict(item.split("=", 1) for item in args.set)
    pairs = parse_names(args.names, args.smoke)
    latest = not args.smoke and not options and pairs == parse_names(list(DEFAULT), False)
    name = f"anomaly-bench-{'-'.join(args.names) or 'all'}{'-smoke' if args.smoke else ''}.json"
    out: Path = args.out or (
        RESULTS / "latest.json" if latest else Path(tempfile.gettempdir()) / name
    )
    meta = metadata(args.smoke, pairs, options)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anomaly-bench-") as tmp:
        ctx = Context(args.smoke, Path(tmp), options=options)
        results = run(ctx, pairs)
    meta.update(load_average_after=os.getloadavg(), duration_s=time.perf_counter() - started)
    results = {"meta": meta, **results}
    write_results(out, results, table(results))
    for name, error in results.get("failed_sections", {}).items():
        print(f"{name} failed: {error}", file=sys.stderr)
    return 1 if "failed_sections" in results else 0


if __name__ == "__main__":
    sys.exit(main())
