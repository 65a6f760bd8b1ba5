"""Drift, thresholds and service alarms on the HTTP API."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import latest_version, list_versions, read_manifest
from anomaly_api.service import metric_names
from api_testing import ANOMALOUS, NORMAL, assert_error, make_settings, samples, serve_app
from factories import TINY_FEATURES, fit_tiny_artifact

FALSE_ALARM = {"id": "a-1", "peak_severity": 0.2, "label": "false_alarm"}
CONFIRMED = {"id": "a-2", "peak_severity": 0.9, "feedback": {"label": "confirmed"}}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    fit_tiny_artifact(root)
    return root


async def test_drift_report_shape_and_gauges(artifacts: Path) -> None:
    rng = np.random.default_rng(1)
    async with serve_app(make_settings(artifacts, drift_min_rows=50)) as client:
        empty = (await client.get("/monitoring/drift")).json()
        assert empty["available"] is True
        assert empty["rows_held"] == 0
        # Shift f0 by 3 standard deviations: it must drift, the others must not.
        rows = rng.normal(size=(200, len(TINY_FEATURES)))
        rows[:, 0] += 3.0
        answer = await client.post(
            "/predict/batch", json={"observations": [{"features": r} for r in rows.tolist()]}
        )
        assert answer.status_code == 200, answer.text
        report = (await client.get("/monitoring/drift")).json()
        assert report["model_version"] == "tiny-1"
        assert report["rows_held"] == 200
        assert report["enough_rows"] is True
        by_feature = {f["feature"]: f for f in report["features"]}
        assert list(by_feature) == TINY_FEATURES
        assert by_feature["f0"]["drifted"] is True
        assert by_feature["f0"]["psi"] > 1.0
        assert not any(by_feature[name]["drifted"] for name in TINY_FEATURES[1:])
        assert set(by_feature["f1"]) >= {"psi", "ks_statistic", "ks_pvalue", "drifted"}
        scrape = samples((await client.get("/metrics")).text)
    assert scrape[(metric_names.DRIFT_WINDOW_ROWS, ())] == 200
    assert scrape[(metric_names.FEATURE_DRIFTED, (("feature", "f0"),))] == 1
    assert scrape[(metric_names.FEATURE_DRIFTED, (("feature", "f3"),))] == 0
    psi = scrape[(metric_names.FEATURE_DRIFT_PSI, (("feature", "f0"),))]
    assert psi == pytest.approx(by_feature["f0"]["psi"])
    assert (metric_names.FEATURE_DRIFT_KS_PVALUE, (("feature", "f0"),)) in scrape
    assert 0 < scrape[(metric_names.MODEL_EXPECTED_ANOMALY_RATE, ())] < 0.5


async def test_drift_off_and_model_without_reference_say_unavailable(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts, drift_enabled=False)) as client:
        await client.post("/predict", json={"features": NORMAL})
        off = await client.get("/monitoring/drift")
        text = (await client.get("/metrics")).text
    assert off.status_code == 200
    assert off.json()["available"] is False
    assert "ANOMALY_DRIFT_ENABLED=false" in off.json()["reason"]
    exported = {name for name, _ in samples(text)}
    assert metric_names.DRIFT_WINDOW_ROWS not in exported
    assert metric_names.FEATURE_DRIFT_PSI not in exported
    assert metric_names.MODEL_EXPECTED_ANOMALY_RATE in exported
    # A version whose manifest lists no references (as saved before this change).
    manifest = artifacts / "tiny-1" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["attachments"] = {}
    manifest.write_text(json.dumps(data))
    async with serve_app(make_settings(artifacts)) as client:
        assert (await client.post("/predict", json={"features": NORMAL})).status_code == 200
        missing = await client.get("/monitoring/drift")
        thresholds = await client.get("/model/thresholds")
        bad = await client.post("/admin/thresholds", json={"target_fpr": 0.1})
    assert missing.status_code == 200
    assert missing.json()["available"] is False
    assert "without a drift reference" in missing.json()["reason"]
    assert thresholds.status_code == 200
    assert thresholds.json()["available"] is False
    assert_error(bad, 422, "invalid_input", "kept no detector scores")


async def test_thresholds_table_and_hot_swap(
    artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        table = (await client.get("/model/thresholds")).json()
        assert table["available"] is True
        assert table["model_version"] == "tiny-1"
        assert set(table["tradeoff"]) == set(table["thresholds"])
        fprs = [row["fpr"] for row in table["tradeoff"]["zscore"]]
        assert fprs == sorted(fprs)
        assert fprs[0] < 0.01 < fprs[-1]
        assert table["false_alarm_rate"]["method"] == "unknown"  # saved without one
        before = (await client.post("/predict", json={"features": ANOMALOUS})).json()
        with caplog.at_level(logging.INFO, logger="anomaly_api.audit"):
            moved = await client.post(
                "/admin/thresholds", json={"target_fpr": 0.2, "new_version": "tiny-1-fpr20"}
            )
        assert moved.status_code == 200, moved.text
        body = moved.json()
        assert body["model_version"] == "tiny-1-fpr20"
        assert body["parent_version"] == "tiny-1"
        assert body["objective"] == "target-fpr=0.2"
        assert body["announced"] is False  # no Redis: nobody else to tell
        assert "no REDIS_URL" in body["announcement"]
        info = (await client.get("/model/info")).json()
        assert info["version"] == "tiny-1-fpr20"
        after = (await client.post("/predict", json={"features": ANOMALOUS})).json()
        assert after["model_version"] == "tiny-1-fpr20"
        assert after["cached"] is False  # cache keys carry the version
        assert before["model_version"] == "tiny-1"
        served = (await client.get("/model/thresholds")).json()
        assert served["thresholds"] == body["thresholds_after"]
        assert served["parent_version"] == "tiny-1"
        assert served["tuning"]["objective"] == "target-fpr=0.2"
        # the revision bounds the rate on the kept normal scores, as training calibrates
        stated = served["false_alarm_rate"]
        assert stated["target"] == 0.2
        assert stated["n_calibration"] == 600
        assert stated["flagged"] / 600 < stated["upper_95"] <= 0.2
        assert stated["method"].startswith("order-statistic bound (95%) on 600 ")
        assert info["false_alarm_rate"] == stated
        drift = (await client.get("/monitoring/drift")).json()
        assert drift["model_version"] == "tiny-1-fpr20"
        # The revision serves the same fit: the drift window went on (the row before, this one).
        assert drift["rows_held"] == 2
    assert latest_version(artifacts) == "tiny-1-fpr20"
    manifest = read_manifest(artifacts, "tiny-1-fpr20")
    assert manifest.parent_version == "tiny-1"
    audit = [r for r in caplog.records if r.name == "anomaly_api.audit"]
    assert len(audit) == 1
    assert audit[0].model_version == "tiny-1-fpr20"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"target_fpr": 1.5}, "must be in (0, 1)"),
        ({"target_fpr": 0}, "must be in (0, 1)"),
        ({"target_fpr": -0.1}, "must be in (0, 1)"),
        ({"thresholds": {"nosuch": 1.0}}, "unknown detector"),
        ({"thresholds": {}}, "no thresholds"),
        ({"contamination": 0.9}, "contamination must be in"),
        ({"target_recall": 0.5}, "labelled validation rows"),
        ({}, "exactly one of"),
        ({"target_fpr": 0.1, "contamination": 0.1}, "exactly one of"),
        ({"target_fpr": 0.1, "new_version": "tiny-1"}, "already exists"),
        ({"feedback": []}, "no false_alarm event"),
        ({"feedback": [CONFIRMED]}, "no false_alarm event"),
        ({"feedback": ["x"]}, "record 1: expected an event object"),
        ({"feedback": [{**FALSE_ALARM, "label": "maybe"}]}, "label must be one of"),
        ({"feedback": [{**FALSE_ALARM, "peak_severity": 2}]}, "peak_severity must be"),
        ({"feedback": [FALSE_ALARM], "target_fpr": 0.1}, "exactly one of"),
        ({"target_fpr": 0.1, "max_shift": 1.0}, "max_shift goes with feedback"),
    ],
)
async def test_bad_threshold_requests_are_422_and_change_nothing(
    artifacts: Path, body: dict[str, object], fragment: str
) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post("/admin/thresholds", json=body)
        assert_error(answer, 422, "invalid_input", fragment)
        info = (await client.get("/model/info")).json()
    assert info["version"] == "tiny-1"
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]
    assert latest_version(artifacts) == "tiny-1"


async def test_non_finite_thresholds_are_422(artifacts: Path) -> None:
    raw = '{"thresholds": {"zscore": NaN}}'
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post(
            "/admin/thresholds", content=raw, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        infinite = await client.post(
            "/admin/thresholds",
            content='{"target_fpr": Infinity}',
            headers={"content-type": "application/json"},
        )
        assert infinite.status_code == 422
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]


async def test_thresholds_need_the_admin_key(artifacts: Path) -> None:
    settings = make_settings(artifacts, api_keys=["client-key"], admin_api_keys=["admin-key"])
    async with serve_app(settings) as client:
        url, body = "/admin/thresholds", {"target_fpr": 0.1}
        assert (await client.post(url, json=body)).status_code == 401
        client_key = {"X-API-Key": "client-key"}
        assert (await client.post(url, json=body, headers=client_key)).status_code == 403
        assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]
        ok = await client.post(url, json=body, headers={"X-API-Key": "admin-key"})
        assert ok.status_code == 200, ok.text
        assert (await client.get("/monitoring/drift")).status_code == 401
        assert (await client.get("/model/thresholds", headers=client_key)).status_code == 200


async def test_service_alarms_are_counted(artifacts: Path) -> None:
    settings = make_settings(artifacts, alarm_min_anomalies=2, alarm_window=5, alarm_cooldown=100)
    async with serve_app(settings) as client:
        rows = [ANOMALOUS] * 3 + [NORMAL] * 3
        answer = await client.post(
            "/predict/batch", json={"observations": [{"features": r} for r in rows]}
        )
        assert answer.status_code == 200
        text = (await client.get("/metrics")).text
    key = (metric_names.ALARMS_TOTAL, (("stream_class", "service"),))
    assert samples(text)[key] == 1  # 2 anomalies in 5 readings alarm once, then cool down


def test_a_tampered_reference_refuses_the_version(artifacts: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(artifacts, copy)
    (copy / "tiny-1" / "drift_reference.json").write_text("{}")
    from anomaly_api.artifacts import ArtifactIntegrityError, load_artifact

    with pytest.raises(ArtifactIntegrityError, match=r"drift_reference\.json"):
        load_artifact(copy)


async def test_an_unwritable_artifact_directory_is_409_and_keeps_the_model(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The image's artifact directory is on a read-only root filesystem. Tests run as root,
    # which writes through permission bits, so the write fails here the way it fails there.
    import errno

    from anomaly_api.training import revision

    def read_only(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(revision, "save_artifact", read_only)
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post("/admin/thresholds", json={"target_fpr": 0.1})
        info = (await client.get("/model/info")).json()
    assert_error(answer, 409, "model_reload_failed", "must be writable")
    assert "Read-only file system" in answer.json()["error"]["message"]
    assert info["version"] == "tiny-1"


async def test_a_differently_fitted_model_starts_a_fresh_drift_window(artifacts: Path) -> None:
    """Drift is measured against the fit's own training rows: another fit, another window."""
    fit_tiny_artifact(artifacts, version="tiny-2", seed=5)  # LATEST now
    async with serve_app(make_settings(artifacts)) as client:
        for _ in range(3):
            assert (await client.post("/predict", json={"features": NORMAL})).status_code == 200
        drift = (await client.get("/monitoring/drift")).json()
        assert (drift["model_version"], drift["rows_held"]) == ("tiny-2", 3)
        reload = await client.post("/admin/reload", params={"version": "tiny-1"})
        assert reload.status_code == 200, reload.text
        drift = (await client.get("/monitoring/drift")).json()
        assert (drift["model_version"], drift["rows_held"]) == ("tiny-1", 0)
        assert (await client.post("/predict", json={"features": NORMAL})).status_code == 200
        assert (await client.get("/monitoring/drift")).json()["rows_held"] == 1


async def test_feedback_moves_the_served_scores_by_the_shift(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        before = (await client.post("/predict", json={"features": ANOMALOUS})).json()
        moved = await client.post(
            "/admin/thresholds",
            json={"feedback": [FALSE_ALARM, CONFIRMED], "new_version": "tiny-1-fb"},
        )
        assert moved.status_code == 200, moved.text
        after = (await client.post("/predict", json={"features": ANOMALOUS})).json()
    body = moved.json()
    assert body["model_version"] == "tiny-1-fb"
    assert body["objective"].startswith("feedback: shift=0.25 silences 1 of 1 false alarms")
    shift = body["feedback"]["shift"]
    assert shift == pytest.approx(0.25)  # peak score of severity 0.2: 0.2 / 0.8
    assert body["feedback"]["stay"] == []
    assert after["model_version"] == "tiny-1-fb"
    assert after["anomaly_score"] == pytest.approx(before["anomaly_score"] - shift, abs=1e-9)
    assert latest_version(artifacts) == "tiny-1-fb"


async def test_other_objectives_answer_without_a_feedback_field(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        moved = await client.post("/admin/thresholds", json={"target_fpr": 0.2})
    assert moved.status_code == 200, moved.text
    assert "feedback" not in moved.json()


async def test_negative_max_shift_is_422(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post(
            "/admin/thresholds", json={"feedback": [FALSE_ALARM], "max_shift": -1}
        )
    assert answer.status_code == 422
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]
