"""The watching page's examples are what the watcher and Prometheus accept."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from anomaly_api.watch.config import parse_watch_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "watching.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_every_complete_watch_yaml_on_the_page_is_valid() -> None:
    files = [yaml.safe_load(b) for b in yaml_blocks() if b.lstrip().startswith("#")]
    assert len(files) == 3
    kinds = set()
    for data in files:
        config = parse_watch_config(data)
        source = config.jobs[0].source
        kind = "prometheus" if source.prometheus is not None else "mqtt"
        kinds.add(kind if config.jobs[0].fit is None else f"{kind} with fit")
    assert kinds == {"prometheus", "mqtt", "prometheus with fit"}


def test_the_alert_rule_passes_promtool(tmp_path: Path) -> None:
    (rules,) = [b for b in yaml_blocks() if b.startswith("groups:")]
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rules found" in result.stdout
