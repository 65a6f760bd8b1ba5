"""The client-cost bench (``bench.client_cost``) runs, reports every step, and its
baseline is the client as committed then (numbers are not checked)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import orjson
import pytest
from bench.client_cost import STEPS, _encoder, baseline_package, client_modules, measure
from bench.servers import ROOT, service_env, service_server

BASELINE = "901d34b"  # the client before the batch path's GC pause and direct Prediction build


def _has_revision(rev: str) -> bool:
    probe = ["git", "cat-file", "-e", f"{rev}^{{commit}}"]
    return subprocess.run(probe, cwd=ROOT, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _has_revision(BASELINE), reason=f"{BASELINE} not in this clone's history")
def test_the_baseline_client_encodes_and_parses_as_this_one(tmp_path: Path) -> None:
    old = client_modules(baseline_package(BASELINE, tmp_path))
    new = client_modules("anomaly_api.client")
    assert old is not new
    assert not hasattr(old, "read_batch")  # really the old code
    rows = np.random.default_rng(0).normal(size=(5, 8)).tolist()
    assert _encoder(old)(rows) == _encoder(new)(rows)
    item = {
        "observation_id": "a", "is_anomaly": True, "anomaly_score": 3, "confidence": 0.5,
        "severity": 1.0, "contributions": [], "model_version": "v", "inference_ms": 1.0,
        "detectors": {"zscore": {"score": 1.0, "threshold": 0.5, "vote": True}}, "cached": False,
    }  # fmt: skip
    body = orjson.loads(orjson.dumps({"predictions": [item, item | {"observation_id": "b"}]}))
    before, after = old.parse_batch(body), new.parse_batch(body)
    assert [vars(p) for p in before] == [
        {k: vars(q)[k] for k in vars(p)} for p, q in zip(before, after, strict=True)
    ]
    assert [p.detectors["zscore"].vote for p in after] == [True, True]


def test_a_smoke_pass_reports_every_step(tiny_artifacts_dir: Path) -> None:
    with service_server("service", service_env(tiny_artifacts_dir, "fast")) as server:
        url = f"http://127.0.0.1:{server.port}"
        report = measure(url, ["anomaly_api.client"], rounds=1, per_round=1)
    steps = report["anomaly_api.client"]
    assert set(steps) == set(STEPS)
    assert all(ms >= 0 for ms in steps.values())
    assert steps["predict_many_per_1000"] > 0
