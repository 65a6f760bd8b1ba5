"""``python -m bench.quality tep`` on a small subset of the TEP files (they are in CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import quality


@pytest.fixture
def tep_available() -> None:
    if not (quality.TEP / "train_normal.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{quality.TEP} is missing; CI must provide ../shared/datasets")
        pytest.skip(f"{quality.TEP} is not available outside CI")


def test_tep_table_runs_on_two_faults(tep_available: None, tmp_path: Path) -> None:
    out = tmp_path / "tep.json"
    quality.main(
        ["tep", "--faults", "4,14", "--detectors", "zscore,pca", "--min-votes", "1",
         "--out", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["model"]["detectors"] == ["zscore", "pca"]
    assert set(result["faults"]) == {"4", "14"}
    assert 0.0 <= result["false_alarm_rate"] <= 0.3
    fault4 = result["faults"]["4"]
    # Fault 4 (reactor cooling water inlet temperature) is a textbook easy fault.
    assert fault4["detection_rate"] > 0.9
    assert fault4["known_variables"] == ["xmv_10", "xmeas_9", "xmeas_21"]
    assert fault4["most_frequent_top1"] in fault4["known_variables"]
    assert result["command"].startswith("python -m bench.quality tep --faults 4,14")
