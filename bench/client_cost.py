"""The client's own CPU per 1,000-row ``predict_batch``, step by step, against a real server.

``python -m bench.client_cost ARTIFACTS_DIR [--rounds N] [--per-round N] [--baseline REV]``.
Starts the service (uvicorn, one worker, ``fast`` backend) on loopback and, in this
process, times with ``time.process_time`` (this process only: the server's CPU is not
counted) each step of ``AnomalyClient.predict_batch`` on fresh random rows (every row a
cache miss): *encode* (the request body's bytes), *exchange* (httpx sending the request
and reading the answer), *decode* (the answer's JSON), *build* (the ``Prediction``
objects), then the whole ``predict_batch`` call and a 10,000-row ``predict_many``
(per 1,000 rows). ``--baseline REV``: the client package as committed at ``REV`` (read
with ``git show``) is measured too, interleaved round by round with this tree's, so a
change of the machine's load hits both alike. Each figure is the median over rounds of
the per-round median, in ms of CPU. ``ARTIFACTS_DIR``: a model from
``bench.models.prepare_artifact`` (made there when empty).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench.models import prepare_artifact
from bench.servers import ROOT, service_env, service_server

BATCH_ROWS = 1_000
MANY_ROWS = 10_000
STEPS = ("encode", "exchange", "decode", "build", "predict_batch", "predict_many_per_1000")


def baseline_package(rev: str, into: Path) -> str:
    """The client package of ``rev`` as an importable package ``client_<rev>`` in ``into``."""
    name = f"client_{rev}"
    package = into / name
    package.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "src/anomaly_api/client/"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for module in (Path(path).stem for path in listed if path.endswith(".py")):
        source = subprocess.run(
            ["git", "show", f"{rev}:src/anomaly_api/client/{module}.py"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        (package / f"{module}.py").write_text(source.replace("anomaly_api.client", name))
    sys.path.insert(0, str(into))
    return name


def client_modules(package: str) -> SimpleNamespace:
    """The client's sans-I/O functions by name, from ``_core`` or the modules it was split into."""
    parts = (
        ("_core",)
        if importlib.util.find_spec(f"{package}._core")
        else ("_client", "_parse", "_transport")
    )
    names: dict[str, Any] = {}
    for part in parts:
        names |= vars(importlib.import_module(f"{package}.{part}"))
    return SimpleNamespace(**names)


def _encoder(core: Any) -> Callable[[list[list[float]]], bytes]:
    """The body encoding of ``predict_batch`` in this version of ``_core``."""
    batch_content = getattr(core, "batch_content", None)
    if batch_content is not None:
        encode: Callable[[list[list[float]]], bytes] = batch_content
        return encode
    return lambda rows: core.json_content({"observations": [core.observation(r) for r in rows]})


def one_round(package: str, client: Any, rows: list[list[float]]) -> dict[str, float]:
    """CPU ms of each step of one 1,000-row batch, and of the whole calls."""
    core = client_modules(package)
    clock = time.process_time
    out: dict[str, float] = {}
    t0 = clock()
    content = _encoder(core)(rows)
    t1 = clock()
    request = client._http.build_request(
        "POST", "/predict/batch", content=content, headers={"Content-Type": "application/json"}
    )
    response = client._run(core.exchange(request, core.NO_RETRY, random.Random(0)))
    with getattr(core, "gc_paused", contextlib.nullcontext)():  # as read_batch, where it is
        t2 = clock()
        data = core.parse_json(response)
        t3 = clock()
        predictions = core.parse_batch(data)
        t4 = clock()
    assert len(predictions) == len(rows)
    out.update(encode=t1 - t0, exchange=t2 - t1, decode=t3 - t2, build=t4 - t3)
    shifted = [[v + 1e-3 for v in row] for row in rows]  # new rows: cache misses again
    t5 = clock()
    client.predict_batch(shifted)
    out["predict_batch"] = clock() - t5
    many = [[v + 2e-3 for v in row] for row in rows] * (MANY_ROWS // BATCH_ROWS)
    many = [[v + 1e-6 * i for v in row] for i, row in enumerate(many)]
    t6 = clock()
    assert len(client.predict_many(many)) == MANY_ROWS
    out["predict_many_per_1000"] = (clock() - t6) * BATCH_ROWS / MANY_ROWS
    return {k: v * 1e3 for k, v in out.items()}


def measure(url: str, packages: list[str], *, rounds: int, per_round: int) -> dict[str, Any]:
    """Median CPU ms per step for each client package, interleaved round by round."""
    rng = np.random.default_rng(7)
    clients = {}
    for package in packages:
        sync = importlib.import_module(f"{package}._sync")
        clients[package] = sync.AnomalyClient(url, max_batch_rows=BATCH_ROWS, max_concurrency=4)
    try:
        for package, client in clients.items():  # warm-up: connections, imports
            one_round(package, client, rng.normal(size=(BATCH_ROWS, 8)).tolist())
        medians: dict[str, dict[str, list[float]]] = {p: {s: [] for s in STEPS} for p in packages}
        for _ in range(rounds):
            per: dict[str, dict[str, list[float]]] = {p: {s: [] for s in STEPS} for p in packages}
            for _ in range(per_round):
                for package, client in clients.items():
                    rows = rng.normal(size=(BATCH_ROWS, 8)).tolist()
                    for step, ms in one_round(package, client, rows).items():
                        per[package][step].append(ms)
            for package in packages:
                for step in STEPS:
                    medians[package][step].append(statistics.median(per[package][step]))
    finally:
        for client in clients.values():
            client.close()
    return {
        package: {step: round(statistics.median(values), 2) for step, values in steps.items()}
        for package, steps in medians.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.client_cost")
    parser.add_argument("artifacts_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--baseline", help="also measure the client of this git revision")
    args = parser.parse_args(argv)
    if not any(args.artifacts_dir.glob("*/manifest.json")):
        args.artifacts_dir.mkdir(parents=True, exist_ok=True)
        prepare_artifact(args.artifacts_dir)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        packages = ["anomaly_api.client"]
        if args.baseline:
            packages.insert(0, baseline_package(args.baseline, Path(tmp)))
        with service_server("service", service_env(args.artifacts_dir, "fast")) as server:
            url = f"http://127.0.0.1:{server.port}"
            report = measure(url, packages, rounds=args.rounds, per_round=args.per_round)
    report = {"unit": "ms of this process's CPU per 1,000 rows", "rows": BATCH_ROWS} | report
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
