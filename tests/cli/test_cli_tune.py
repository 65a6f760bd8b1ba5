"""``anomaly-api tune``: a verified revision with moved thresholds (by an objective or by
labelled events: every anomaly score exactly the shift lower), and its clean errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomaly_api.artifacts import (
    FittedModelInfo,
    latest_version,
    list_versions,
    load_any_artifact,
    load_artifact,
    read_manifest,
)
from anomaly_api.cli.main import app
from anomaly_api.data.synthetic import SENSOR_CHANNELS, generate_sensor_data
from anomaly_api.data.timeseries import TimeSeriesDataset
from anomaly_api.training.feedback import peak_score
from anomaly_api.training.references import SCORE_REFERENCE_FILE, load_references

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def artifacts(tmp_path: Path, default_artifacts_dir: Path) -> Path:
    """A private copy of the default (labelled, synthetic) model's artifact directory."""
    target = tmp_path / "artifacts"
    shutil.copytree(default_artifacts_dir, target)
    return target


def test_training_keeps_verified_references(default_artifacts_dir: Path) -> None:
    artifact = load_artifact(default_artifacts_dir)
    manifest = artifact.manifest
    assert set(manifest.attachments) == {"drift_reference.json", SCORE_REFERENCE_FILE}
    refs = load_references(artifact.path, manifest)
    assert refs.drift is not None
    assert refs.drift.feature_names == tuple(manifest.feature_names)
    assert refs.scores is not None
    assert refs.scores.has_labels
    assert refs.scores.detector_names == tuple(d.name for d in manifest.detectors)
    n_fit = manifest.training_data.n_fit_rows
    assert refs.scores.train_scores.shape == (n_fit, len(manifest.detectors))


def test_tune_target_fpr_writes_a_new_latest_version(artifacts: Path) -> None:
    parent = latest_version(artifacts)
    assert parent is not None
    code, out, err = invoke(
        "tune", "--artifacts-dir", artifacts, "--target-fpr", "0.01", "--new-version", "fpr1"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["version"] == "fpr1"
    assert record["parent_version"] == parent
    assert latest_version(artifacts) == "fpr1"
    tuned = load_artifact(artifacts, "fpr1")  # verified: hashes of model and references
    assert tuned.manifest.parent_version == parent
    root = read_manifest(artifacts, parent)
    assert root.fitted_model is None  # a trained version is its own fitted model
    assert tuned.manifest.fitted_model == FittedModelInfo(
        version=parent, model_sha256=root.model_sha256
    )
    assert tuned.manifest.tuning is not None
    assert tuned.manifest.tuning["objective"] == "target-fpr=0.01"
    assert tuned.manifest.tuning["expected"]["fpr"] <= 0.02
    after = [record["thresholds_after"][d.name] for d in tuned.manifest.detectors]
    np.testing.assert_allclose(tuned.model.offsets_, after)
    assert [d.threshold for d in tuned.manifest.detectors] == after
    assert after != [record["thresholds_before"][d.name] for d in tuned.manifest.detectors]
    assert tuned.manifest.attachments == read_manifest(artifacts, parent).attachments


def test_tune_explicit_threshold_keeps_the_others(artifacts: Path) -> None:
    code, out, err = invoke(
        "tune", "--artifacts-dir", artifacts, "--thresholds", "zscore=-4.5", "--no-latest"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["thresholds_after"]["zscore"] == -4.5
    for name in ("isolation_forest", "local_outlier_factor"):
        assert record["thresholds_after"][name] == record["thresholds_before"][name]
    assert latest_version(artifacts) == record["parent_version"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-fpr", "1.5"], "must be in (0, 1)"),
        (["--target-fpr", "0"], "must be in (0, 1)"),
        (["--thresholds", "nosuch=1"], "unknown detector"),
        (["--thresholds", "zscore=nan"], "finite"),
        (["--thresholds", "zscore"], "expected name=value"),
        (["--contamination", "0.9"], "contamination must be in"),
        ([], "exactly one of"),
        (["--target-fpr", "0.1", "--contamination", "0.1"], "exactly one of"),
        (["--version", "nope", "--target-fpr", "0.1"], "no model version 'nope'"),
        (["--new-version", "../x", "--target-fpr", "0.1"], "invalid model version"),
    ],
)
def test_tune_errors_are_one_line_exit_2_and_write_nothing(
    artifacts: Path, args: list[str], message: str
) -> None:
    before = sorted(p.name for p in artifacts.iterdir())
    code, _, err = invoke("tune", "--artifacts-dir", artifacts, *args)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in artifacts.iterdir()) == before


def test_tampered_reference_is_refused(artifacts: Path) -> None:
    version = latest_version(artifacts)
    assert version is not None
    path = artifacts / version / SCORE_REFERENCE_FILE
    path.write_bytes(path.read_bytes() + b"x")
    code, _, err = invoke("tune", "--artifacts-dir", artifacts, "--target-fpr", "0.1")
    assert code == 2
    assert "integrity check failed" in err
    assert len(list_versions(artifacts)) == 1


def test_a_model_without_kept_scores_cannot_be_tuned(artifacts: Path) -> None:
    version = latest_version(artifacts)
    assert version is not None
    manifest_path = artifacts / version / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["attachments"] = {}
    manifest_path.write_text(json.dumps(data))
    code, _, err = invoke("tune", "--artifacts-dir", artifacts, "--target-fpr", "0.1")
    assert code == 2
    assert "kept no detector scores" in err


def test_tune_a_time_aware_model(ta_artifacts: Path) -> None:
    code, out, err = invoke(
        "tune", "--artifacts-dir", ta_artifacts, "--version", "ta-1", "--target-fpr", "0.05"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["parent_version"] == "ta-1"
    assert set(record["thresholds_after"]) == {"top4_z"}
    # Trained at well under 5% false positives: a 5% target loosens (raises) the threshold.
    assert record["thresholds_after"]["top4_z"] > record["thresholds_before"]["top4_z"]
    assert record["expected"]["fpr"] <= 0.05
    assert latest_version(ta_artifacts) == record["version"]
    manifest = read_manifest(ta_artifacts, record["version"])
    assert manifest.time_aware is not None
    assert [d.threshold for d in manifest.detectors] == [record["thresholds_after"]["top4_z"]]
    code, out_no_latest, err = invoke(
        "tune", "--artifacts-dir", ta_artifacts, "--thresholds", "top4_z=-9", "--no-latest"
    )
    assert code == 0, err
    assert json.loads(out_no_latest)["thresholds_after"] == {"top4_z": -9.0}
    # A revision of a revision records the chain's root, the trained version.
    second = read_manifest(ta_artifacts, json.loads(out_no_latest)["version"])
    assert second.parent_version == record["version"]
    assert second.fitted_model == manifest.fitted_model
    assert second.fitted_model is not None
    assert second.fitted_model.version == "ta-1"
    code, out, err = invoke("models", "--artifacts-dir", ta_artifacts)
    assert code == 0, err
    listed = {line[2:].split()[0]: line for line in out.splitlines()[1:]}
    assert set(listed) == {"ta-1", record["version"], json.loads(out_no_latest)["version"]}
    assert listed[record["version"]].startswith("*")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-fpr", "1.5"], "must be in (0, 1)"),
        (["--thresholds", "zscore=-3"], "unknown detector"),
        (["--thresholds", "top4_z=inf"], "finite"),
    ],
)
def test_bad_time_aware_tuning_is_one_error_line_and_writes_nothing(
    ta_artifacts: Path, args: list[str], message: str
) -> None:
    before = sorted(p.name for p in ta_artifacts.iterdir())
    code, _, err = invoke("tune", "--artifacts-dir", ta_artifacts, *args)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in ta_artifacts.iterdir()) == before


PEAKS = {"f1": 0.3, "f2": 0.5, "f3": 2.5, "c1": 1.5}
"""Peak anomaly scores: f3 lies above the confirmed c1, so it stays."""


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
