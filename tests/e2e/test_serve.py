"""``anomaly-api serve`` as a real process, called over HTTP (and with the docs' curl)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from e2e_service import ServerProcess, run_service

from api_testing import ANOMALOUS, NORMAL

ROOT = Path(__file__).resolve().parents[2]


def documented_curl_commands(page: Path = ROOT / "docs" / "api.md") -> list[str]:
    """The ``curl`` commands of a page (by default the API page), as written there."""
    text = page.read_text()
    commands = re.findall(r"^curl .*?(?<!\\)$", text, flags=re.MULTILINE | re.DOTALL)
    return [c.replace("\\\n", " ") for c in commands]


def test_served_endpoints(served_tiny_model: ServerProcess) -> None:
    with httpx.Client(base_url=served_tiny_model.url, timeout=10) as http:
        health = http.get("/health").json()
        assert health["status"] == "ok"
        assert health["model_version"] == "tiny-1"
        assert http.get("/health/ready").status_code == 200
        assert http.get("/model/info").json()["n_features"] == 8
        normal = http.post(
            "/predict", json={"features": NORMAL, "observation_id": "sensor_42_t1234"}
        ).json()
        assert normal["is_anomaly"] is False
        assert normal["observation_id"] == "sensor_42_t1234"
        fresh = [0.0123, 0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7]  # used by no other test
        batch = http.post(
            "/predict/batch",
            json={
                "observations": [{"features": NORMAL}, {"features": fresh}, {"features": ANOMALOUS}]
            },
        ).json()
        assert [p["is_anomaly"] for p in batch["predictions"]] == [False, False, True]
        assert batch["predictions"][0]["cached"] is True  # scored by the request above
        assert batch["predictions"][1]["cached"] is False
        bad = http.post(
            "/predict",
            content=b'{"features": [NaN, 1, 1, 1, 1, 1, 1, 1]}',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_json"
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert http.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize(("page", "at_least"), [("docs/api.md", 4), ("README.md", 1)])
def test_documented_curl_commands_work_as_written(
    served_tiny_model: ServerProcess, page: str, at_least: int
) -> None:
    commands = documented_curl_commands(ROOT / page)
    assert len(commands) >= at_least, f"{page} lost its curl examples"
    for command in commands:
        assert "http://localhost:8000/" in command
        args = shlex.split(command.replace("http://localhost:8000", served_tiny_model.url))
        result = subprocess.run(
            [*args, "--silent", "--show-error", "--fail-with-body", "--max-time", "30"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        body = json.loads(result.stdout)
        assert body.get("model_version") == "tiny-1", body


@pytest.mark.slow
def test_serve_trains_the_default_model_when_there_is_none(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    with run_service(artifacts, tmp_path, ready_timeout_s=240) as service:
        info = httpx.get(f"{service.url}/model/info", timeout=10).json()
        assert info["n_features"] == 8
        assert (artifacts / info["version"] / "manifest.json").is_file()
        normal = httpx.post(f"{service.url}/predict", json={"features": NORMAL}, timeout=10)
        assert normal.status_code == 200, normal.text
        service.process.send_signal(signal.SIGINT)
        assert service.process.wait(timeout=30) == 0
    assert "training the default model" in service.output()


def test_serve_without_training_reports_no_model(tmp_path: Path) -> None:
    with run_service(tmp_path / "empty", tmp_path, "--no-train-if-missing") as service:
        health = httpx.get(f"{service.url}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        predict = httpx.post(f"{service.url}/predict", json={"features": NORMAL}, timeout=10)
        assert predict.status_code == 503
        assert "no trained model" in predict.json()["error"]["message"]
