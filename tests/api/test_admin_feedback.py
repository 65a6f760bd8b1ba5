"""``POST /admin/thresholds`` with ``feedback``: labelled events move the served model's
thresholds by the feedback rule; malformed records are a 422 that writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomaly_api.artifacts import latest_version, list_versions
from api_testing import ANOMALOUS, assert_error, make_settings, serve_app
from factories import fit_tiny_artifact

FALSE_ALARM = {"id": "a-1", "peak_severity": 0.2, "label": "false_alarm"}
CONFIRMED = {"id": "a-2", "peak_severity": 0.9, "feedback": {"label": "confirmed"}}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    fit_tiny_artifact(root)
    return root


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


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"feedback": []}, "no false_alarm event"),
        ({"feedback": [CONFIRMED]}, "no false_alarm event"),
        ({"feedback": ["x"]}, "record 1: expected an event object"),
        ({"feedback": [{**FALSE_ALARM, "label": "maybe"}]}, "label must be one of"),
        ({"feedback": [{**FALSE_ALARM, "peak_severity": 2}]}, "peak_severity must be"),
        ({"feedback": [FALSE_ALARM], "target_fpr": 0.1}, "exactly one of"),
        ({"target_fpr": 0.1, "max_shift": 1.0}, "max_shift goes with feedback"),
    ],
)
async def test_bad_feedback_is_422_and_writes_nothing(
    artifacts: Path, body: dict[str, object], fragment: str
) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post("/admin/thresholds", json=body)
        assert_error(answer, 422, "invalid_input", fragment)
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]


async def test_negative_max_shift_is_422(artifacts: Path) -> None:
    async with serve_app(make_settings(artifacts)) as client:
        answer = await client.post(
            "/admin/thresholds", json={"feedback": [FALSE_ALARM], "max_shift": -1}
        )
    assert answer.status_code == 422
    assert [m.version for m in list_versions(artifacts)] == ["tiny-1"]
