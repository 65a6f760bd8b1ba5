"""``anomaly-api tune --feedback``: a revision that lowers every anomaly score by exactly
the shift the labelled events ask for (point-wise and time-aware), and its clean errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import latest_version, list_versions, load_any_artifact
from anomaly_api.cli.main import app
from anomaly_api.data.synthetic import SENSOR_CHANNELS, generate_sensor_data
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.training.feedback import peak_score

runner = CliRunner()

PEAKS = {"f1": 0.3, "f2": 0.5, "f3": 2.5, "c1": 1.5}
"""Peak anomaly scores: f3 lies above the confirmed c1, so it stays."""


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def write_feedback(path: Path) -> Path:
    lines = [
        {
            "id": name,
            "peak_severity": a / (1 + a),
            "label": "confirmed" if name.startswith("c") else "false_alarm",
        }
        for name, a in PEAKS.items()
    ]
    lines.append({"id": "e1", "peak_severity": 0.9, "feedback": {"label": "expected"}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def artifacts(tmp_path: Path, default_artifacts_dir: Path) -> Path:
    target = tmp_path / "artifacts"
    shutil.copytree(default_artifacts_dir, target)
    return target


def tune_feedback(artifacts: Path, feedback: Path) -> dict[str, object]:
    code, out, err = invoke(
        "tune", "--artifacts-dir", artifacts, "--feedback", feedback, "--new-version", "fb"
    )
    assert code == 0, err
    record: dict[str, object] = json.loads(out)
    return record


def test_pointwise_scores_drop_by_exactly_the_shift(artifacts: Path, tmp_path: Path) -> None:
    parent = load_any_artifact(artifacts, None)
    X = generate_sensor_data(300, seed=3)[list(SENSOR_CHANNELS)].to_numpy()
    before = parent.model.explain(X).anomaly_score
    record = tune_feedback(artifacts, write_feedback(tmp_path / "labels.jsonl"))
    delta = math.nextafter(peak_score(0.5 / 1.5), math.inf)  # just above f2's peak
    feedback = record["feedback"]
    assert isinstance(feedback, dict)
    assert feedback["shift"] == delta
    assert (feedback["silenced"], feedback["false_alarms"]) == (2, 3)
    assert [s["id"] for s in feedback["stay"]] == ["f3"]
    assert feedback["expected_ignored"] == 1
    assert latest_version(artifacts) == "fb"
    tuned = load_any_artifact(artifacts, "fb")  # verified
    assert tuned.manifest.parent_version == parent.manifest.version
    assert tuned.manifest.tuning is not None
    assert tuned.manifest.tuning["objective"].startswith("feedback: shift=0.5 silences 2 of 3")
    assert tuned.manifest.tuning["details"] == feedback
    after = tuned.model.explain(X).anomaly_score
    np.testing.assert_allclose(after, before - delta, rtol=0, atol=1e-9)


def test_time_aware_scores_drop_by_the_shift_warm_up_keeps_its_own(
    ta_artifacts: Path, ta_series: TimeSeriesDataset, tmp_path: Path
) -> None:
    parent = load_any_artifact(ta_artifacts, None)
    X = ta_series.data.X[:400]
    before = parent.model.score_frame(X)
    record = tune_feedback(ta_artifacts, write_feedback(tmp_path / "labels.jsonl"))
    after = load_any_artifact(ta_artifacts, "fb").model.score_frame(X)
    delta = record["feedback"]["shift"]  # type: ignore[index]
    warm = before.warming_up
    assert warm.any()
    assert (~warm).any()
    np.testing.assert_array_equal(after.warming_up, warm)
    np.testing.assert_allclose(
        after.anomaly_score[~warm], before.anomaly_score[~warm] - delta, rtol=0, atol=1e-9
    )
    np.testing.assert_array_equal(after.anomaly_score[warm], before.anomaly_score[warm])


def test_dry_run_writes_nothing(artifacts: Path, tmp_path: Path) -> None:
    versions = [m.version for m in list_versions(artifacts)]
    code, out, err = invoke(
        "tune",
        "--artifacts-dir",
        artifacts,
        "--feedback",
        write_feedback(tmp_path / "l.jsonl"),
        "--max-shift",
        "0.4",
        "--dry-run",
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["dry_run"] is True
    assert record["latest"] is False
    assert record["feedback"]["shift"] == 0.4
    assert [s["why"] for s in record["feedback"]["stay"]] == ["cap", "confirmed"]
    assert [m.version for m in list_versions(artifacts)] == versions


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ('{"peak_severity": 0.5, "label": "false_alarm"}\n{oops\n', (), "line 2: not JSON"),
        ('{"peak_severity": 0.5, "label": "nope"}\n', (), "record 1: label must be one of"),
        ('{"peak_severity": 0.5, "label": "confirmed"}\n', (), "no false_alarm event"),
        ('{"peak_severity": 0.5}\n', (), "nothing to silence"),
        ('{"peak_severity": 0.5, "label": "false_alarm"}\n', ("--max-shift", "-1"), "max shift"),
        (
            '{"peak_severity": 0.5, "label": "false_alarm"}\n',
            ("--target-fpr", "0.1"),
            "exactly one",
        ),
        (None, (), "cannot read"),
    ],
)
def test_bad_feedback_is_one_error_line_and_writes_nothing(
    artifacts: Path, tmp_path: Path, content: str | None, extra: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "labels.jsonl"
    if content is not None:
        path.write_text(content)
    versions = [m.version for m in list_versions(artifacts)]
    code, _, err = invoke("tune", "--artifacts-dir", artifacts, "--feedback", path, *extra)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1
    assert [m.version for m in list_versions(artifacts)] == versions


def test_max_shift_without_feedback_is_refused(artifacts: Path) -> None:
    code, _, err = invoke(
        "tune", "--artifacts-dir", artifacts, "--target-fpr", "0.1", "--max-shift", "1"
    )
    assert code == 2
    assert "--max-shift goes with --feedback" in err
