"""``ServiceMetrics`` in Prometheus multiprocess mode (one of several workers): a collector's
counter reaches the shared files by its increases, a gauge per worker, a model swap leaves
the old version at 0. prometheus_client chooses the mode when it is imported, so each case
runs in a fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.process  # a child interpreter

SCRIPT = """
import json
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from anomaly_api.service.metrics import ServiceMetrics

class Source:
    ops, level = 3.0, 0.5
    def collect(self):
        ops = CounterMetricFamily("probe_ops", "Operations.", labels=["result"])
        ops.add_metric(["hit"], self.ops)
        level = GaugeMetricFamily("probe_level", "A level.")
        level.add_metric([], self.level)
        return [ops, level]

metrics, source = ServiceMetrics(), Source()
metrics.register(source)
metrics.set_model_version("v1")
metrics.set_model_version("v2")
metrics.observe_request("POST", "/predict", 200, 0.01)
pages = [metrics.render().decode()]
source.ops = 5.0
pages.append(metrics.render().decode())
source.ops = 1.0  # the collector started again from zero
pages.append(metrics.render().decode())
print(json.dumps({"multiprocess": metrics.multiprocess, "pages": pages}))
"""


def _run(tmp_path: Path) -> dict[str, Any]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", SCRIPT],  # no "not implemented"
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _values(page: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == name
    }


def test_collectors_and_gauges_reach_the_shared_files(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result["multiprocess"] is True
    first, second, third = result["pages"]
    hit = (("result", "hit"),)
    assert [_values(p, "probe_ops_total")[hit] for p in (first, second, third)] == [3, 5, 6]
    ((labels, level),) = _values(first, "probe_level").items()
    assert level == 0.5
    assert dict(labels).keys() == {"pid"}  # one line per worker
    versions = {dict(k)["version"]: v for k, v in _values(first, "anomaly_model_info").items()}
    assert versions == {"v1": 0, "v2": 1}
    requests = _values(first, "anomaly_http_requests_total")
    assert requests == {(("method", "POST"), ("route", "/predict"), ("status", "200")): 1}
