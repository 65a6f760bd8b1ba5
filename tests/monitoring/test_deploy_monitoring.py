"""deploy/monitoring/: the alert rules (promtool), the dashboard and the Prometheus config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from anomaly_api.service import metric_names
from dashboard_metrics import (
    DASHBOARD,
    PROMETHEUS_CONFIG,
    REPO_ROOT,
    RULE_TESTS,
    RULES,
    SYNTHESISED_BY_PROMETHEUS,
    dashboard_exprs,
    names_in,
    used_metric_names,
)

DEFINED = {
    exposed
    for name, value in vars(metric_names).items()
    if name.isupper() and isinstance(value, str) and value.startswith("anomaly_")
    for exposed in metric_names.exposed_names(value)
}


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool (Debian's `prometheus` package; .ci/run installs it)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run must install `prometheus`")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_pass_promtool_check(promtool: str) -> None:
    done = _promtool(promtool, "check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_rule_unit_test_fails(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: expecting the breaker alert without an open breaker does."""
    (tmp_path / RULES.name).write_text(RULES.read_text())
    (tmp_path / "broken.test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": [RULES.name],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": 'anomaly_cache_breaker_state{job="anomaly-api",'
                                'instance="a",state="open"}',
                                "values": "0x10",
                            }
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "10m",
                                "alertname": "RedisBreakerOpen",
                                "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    done = _promtool(promtool, "test", "rules", "broken.test.yml", cwd=tmp_path)
    assert done.returncode != 0


def test_prometheus_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    # The config points at the rules where the image puts them; check it with them beside it.
    config = PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/rules/*.rules.yml", str(RULES))
    (tmp_path / "prometheus.yml").write_text(config)
    done = _promtool(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_every_rule_alerts_or_records_with_a_severity() -> None:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == {
        "AnomalyRateAboveTraining",
        "FeatureDrift",
        "RedisBreakerOpen",
        "NoReadyReplica",
        "StreamAlarm",
    }
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_dashboard_and_rules_use_only_defined_metric_names() -> None:
    unknown = used_metric_names() - DEFINED - SYNTHESISED_BY_PROMETHEUS
    assert not unknown, f"define {sorted(unknown)} in service/metric_names.py"


def test_dashboard_covers_what_operators_watch() -> None:
    used = {name for expr in dashboard_exprs() for name in names_in(expr)}
    for needed in (
        metric_names.HTTP_REQUESTS_TOTAL,
        f"{metric_names.HTTP_REQUEST_DURATION_SECONDS}_bucket",
        metric_names.PREDICTIONS_TOTAL,
        metric_names.CACHE_OPERATIONS_TOTAL,
        metric_names.CACHE_BREAKER_STATE,
        metric_names.MODEL_INFO,
        metric_names.FEATURE_DRIFT_PSI,
        metric_names.FEATURE_DRIFT_KS_STATISTIC,
        metric_names.FEATURE_DRIFT_KS_PVALUE,
        metric_names.ALARMS_TOTAL,
        metric_names.STREAM_ALARMS_TOTAL,
    ):
        assert needed in used, f"the dashboard shows no {needed}"


def test_dashboard_is_importable_grafana_json() -> None:
    import json

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "anomaly-api"
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert 'job="anomaly-api"' in target["expr"]


def test_names_in_skips_label_values_functions_and_recording_rules() -> None:
    expr = (
        'sum(rate(anomaly_predictions_total{outcome="anomaly_x"}[5m])) '
        "/ anomaly:predictions_anomaly_share:rate15m and up"
    )
    assert names_in(expr) == {"anomaly_predictions_total", "up"}


def test_compose_monitoring_profile_scrapes_api_with_the_rules() -> None:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["build"] == {
        "context": "deploy/monitoring",
        "dockerfile": "prometheus/Dockerfile",
    }
    assert prometheus["ports"][0].startswith("${ANOMALY_PUBLISH_ADDR:-127.0.0.1}:")
    dockerfile = (REPO_ROOT / "deploy/monitoring/prometheus/Dockerfile").read_text()
    assert "apt-get install --yes --no-install-recommends prometheus" in dockerfile
    assert "COPY rules/anomaly-api.rules.yml /etc/prometheus/rules/" in dockerfile
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "anomaly-api"]
    assert job["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "5s"}
    ]
