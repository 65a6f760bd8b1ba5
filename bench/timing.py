"""The suite's timers: the median of a call, and variants interleaved in rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping


def median_ms(fn: Callable[[], object], repeats: int, budget_s: float = 10.0) -> float:
    """Median wall time of ``fn`` in ms over ``repeats`` calls after one warm-up (fewer when
    ``budget_s`` runs out)."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
        if time.perf_counter() > deadline:
            break
    return statistics.median(times)


def rounds_ms(
    variants: Mapping[str, Callable[[], object]], *, rounds: int, repeats: int, budget_s: float
) -> dict[str, float]:
    """Each variant's median over ``rounds`` of its per-round median (``median_ms``); the
    variants alternate within each round, so a change of the machine's load hits them all."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(max(rounds, 1)):
        for name, fn in variants.items():
            runs[name].append(median_ms(fn, repeats, budget_s / max(rounds, 1)))
    return {name: statistics.median(values) for name, values in runs.items()}


Variant = Callable[[int], Awaitable[object]]
"""A coroutine function given a fresh counter each call (to make a new request body)."""


async def async_rounds_us(
    variants: dict[str, Variant], *, rounds: int, per_round: int, start: int = 0
) -> dict[str, float]:
    """``rounds_ms`` for coroutines, in µs of the process's CPU (every thread; a loaded machine
    inflates it far less than the wall clock); one counter for all variants, so no two calls
    send the same body."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    counter = start
    for _ in range(max(rounds, 1)):
        for name, run in variants.items():
            cpu = []
            for _ in range(max(per_round, 1)):
                counter += 1
                started = time.process_time()
                await run(counter)
                cpu.append(time.process_time() - started)
            runs[name].append(statistics.median(cpu))
    return {name: round(statistics.median(values) * 1e6, 2) for name, values in runs.items()}
