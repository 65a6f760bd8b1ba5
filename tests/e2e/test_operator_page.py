"""The operator page (``/ui``) in headless chromium against a real server with a throwaway
Redis and a client key: without the key the page says so; with it the page lists the
stream with its plot and its event; a click labels the event, the page shows the label and
the API lists it; picking another model in the model list shows that model's streams
instead. The page asks nothing of any other origin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from anomaly_api import registry
from anomaly_api.testing import running_server, throwaway_redis
from api_testing import ANOMALOUS, NORMAL
from factories import fit_tiny_artifact
from headless_browser import HeadlessBrowser

KEY = "operator-page-key"
STREAM = "plant-1:pump-7"
PUMPS_STREAM = "plant-2:pump-9"
# 2 anomalies within 3 readings raise an alarm: readings 1-2 open an event, 5 closes it
SEQUENCE = [NORMAL, ANOMALOUS, ANOMALOUS, NORMAL, NORMAL, NORMAL, NORMAL]


def wait_for(condition: str, value: str, timeout_ms: int = 15_000) -> str:
    """A script resolving to ``value`` (JSON) once ``condition`` holds in the page."""
    return f"""new Promise((resolve, reject) => {{
      const started = Date.now();
      const poll = () => {{
        if ({condition}) return resolve(JSON.stringify({value}));
        if (Date.now() - started > {timeout_ms}) return reject(new Error("timed out: " +
          document.getElementById("status").textContent));
        setTimeout(poll, 50);
      }};
      poll();
    }})"""


def after(action: str, then: str) -> str:
    """A script that runs the statements ``action``, then evaluates to ``then``."""
    return f"(() => {{ {action} }})(), {then}"


def _stream_card(sid: str) -> str:
    return f"document.querySelector('section.stream[data-stream=\"{sid}\"]')"


def test_an_operator_sees_the_stream_and_labels_its_event(
    tmp_path: Path, tiny_artifacts_dir: Path, browser: HeadlessBrowser
) -> None:
    artifacts = tmp_path / "artifacts"  # default, and the named model pumps
    shutil.copytree(tiny_artifacts_dir, artifacts)
    fit_tiny_artifact(registry.model_dir(artifacts, "pumps"), "p1", seed=1)
    registry.register_version(artifacts, "pumps", "p1")
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts),
        "ANOMALY_API_KEYS": KEY,
        "ANOMALY_ALARM_MIN_ANOMALIES": "2",
        "ANOMALY_ALARM_WINDOW": "3",
        "ANOMALY_ALARM_COOLDOWN": "0",
        "ANOMALY_REDIS_TIMEOUT_S": "1.0",
    }
    with throwaway_redis(tmp_path) as redis_server:
        env["ANOMALY_REDIS_URL"] = redis_server.url
        with running_server(tmp_path, env) as server, httpx.Client(timeout=30) as http:
            auth = {"X-API-Key": KEY}
            body = {"timestamps": [1.0e9 + i for i in range(len(SEQUENCE))], "readings": SEQUENCE}
            sent = http.post(f"{server.url}/streams/{STREAM}/readings", json=body, headers=auth)
            assert sent.status_code == 200, sent.text
            event_id = sent.json()["answers"][2]["event_id"]
            assert event_id is not None
            pumps = f"{server.url}/models/pumps/streams/{PUMPS_STREAM}/readings"
            assert http.post(pumps, json=body, headers=auth).status_code == 200

            # No key yet: the page loads (it is public) and says the API wants one.
            refused = browser.visit(
                f"{server.url}/ui",
                wait_for(
                    "document.getElementById('status').classList.contains('error')",
                    "document.getElementById('status').textContent",
                ),
            )
            assert refused.status == 200
            assert "401" in refused.data
            assert "API key" in refused.data
            assert not browser.evaluate(f"JSON.stringify(Boolean({_stream_card(STREAM)}))"), (
                "nothing listed without the key"
            )

            # A key the service does not accept: said so, nothing listed.
            wrong = browser.evaluate(
                after(
                    """document.getElementById("api-key").value = "not-the-key";
                    document.getElementById("key-form").requestSubmit();""",
                    wait_for(
                        "document.getElementById('status').textContent.includes('403')",
                        "document.getElementById('status').textContent",
                    ),
                )
            )
            assert "refused this API key" in wrong

            # The key entered: the stream appears; the key is kept for this tab only.
            stored = browser.evaluate(
                after(
                    f"""document.getElementById("api-key").value = {json.dumps(KEY)};
                    document.getElementById("key-form").requestSubmit();""",
                    wait_for(_stream_card(STREAM), 'sessionStorage.getItem("anomaly-api-key")'),
                )
            )
            assert stored == KEY

            # Loaded again (the key kept): the stream with its plot and its event.
            visit = browser.visit(
                f"{server.url}/ui",
                wait_for(
                    f"{_stream_card(STREAM)} && {_stream_card(STREAM)}.querySelector('.event')",
                    _card_script(STREAM),
                ),
            )
            assert not visit.errors
            shown = visit.data
            assert shown["points"] == len(SEQUENCE)
            assert shown["flagged_dots"] == 2
            assert shown["events"] == [event_id]
            assert shown["labels"] == [""]
            assert shown["sensors"] == 3

            # A click on "False alarm": the page shows the label, the API stored it.
            labelled = browser.evaluate(
                after(
                    f"""const event = {_stream_card(STREAM)}.querySelector(
                      '[data-event="{event_id}"]');
                    event.querySelector('input').value = "valve test";
                    event.querySelector('button[data-label="false_alarm"]').click();""",
                    wait_for(
                        f"{_stream_card(STREAM)}.querySelector('.label[data-label=\"false_alarm\"]')",
                        f"{_stream_card(STREAM)}.querySelector('.event .label').textContent",
                    ),
                )
            )
            assert "false alarm" in labelled
            assert "valve test" in labelled
            browser.report(visit)
            assert not visit.errors
            assert visit.requested
            assert all(url.startswith(server.url + "/") for url in visit.requested)

            # The model list: pumps picked, its stream replaces default's.
            picked = browser.evaluate(
                after(
                    """const picker = document.getElementById("model");
                    picker.value = "pumps";
                    picker.dispatchEvent(new Event("change"));""",
                    wait_for(
                        f"{_stream_card(PUMPS_STREAM)} && !{_stream_card(STREAM)}",
                        """{models: [...document.querySelectorAll("#model option")]
                          .map(o => o.value), meta: document.querySelector(
                          "section.stream .meta").textContent}""",
                    ),
                )
            )
            assert picked["models"] == ["default", "pumps"]
            assert "model p1" in picked["meta"]

            events = http.get(f"{server.url}/streams/{STREAM}/events", headers=auth).json()
            (event,) = events["events"]
            assert event["id"] == event_id
            assert event["feedback"]["label"] == "false_alarm"
            assert event["feedback"]["note"] == "valve test"
            assert event["feedback"]["by"].startswith("client:")


def _card_script(sid: str) -> str:
    """What the tests look at in a stream's card (a JS expression)."""
    card = _stream_card(sid)
    return f"""{{
      points: {card}.querySelector("svg.plot polyline.score").getAttribute("points")
        .trim().split(" ").length,
      flagged_dots: {card}.querySelectorAll("svg.plot circle.anomaly").length,
      events: [...{card}.querySelectorAll(".event")].map(e => e.dataset.event),
      labels: [...{card}.querySelectorAll(".event .label")].map(e => e.dataset.label),
      sensors: {card}.querySelectorAll(".event table.sensors tbody tr").length,
    }}"""
