"""The metric names the Grafana dashboard and the alert rules of deploy/monitoring/ use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
MONITORING = REPO_ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "anomaly-api.json"
RULES = MONITORING / "rules" / "anomaly-api.rules.yml"
RULE_TESTS = MONITORING / "rules" / "anomaly-api.rules.test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"

SYNTHESISED_BY_PROMETHEUS = frozenset({"up"})
"""Series Prometheus makes itself for every target; no server exports them."""

# A metric name in PromQL: not a label value (quoted), not a function (followed by "(").
_NAME = re.compile(r"(?<![\w:\"])(anomaly_[a-z0-9_]+|up)\b(?!\s*\()")
_QUOTED = re.compile(r'"[^"]*"')


def names_in(expr: str) -> set[str]:
    """Metric names in one PromQL expression (recording-rule names contain ``:``)."""
    return set(_NAME.findall(_QUOTED.sub('""', expr)))


def dashboard_exprs() -> list[str]:
    """Every query of every panel of the dashboard."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    """Every expression of every alerting and recording rule."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def used_metric_names() -> set[str]:
    """Every metric name the dashboard and the rules query."""
    return {name for expr in dashboard_exprs() + rule_exprs() for name in names_in(expr)}
