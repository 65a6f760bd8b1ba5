"""The image and the compose stack, built and run for real (docs/deployment.md's quick start).

Builds the project's own Dockerfile unmodified (plus the load balancer), checks the size
budget and the non-root user, starts api + redis + lb with the shared prediction cache
(``ANOMALY_PREDICTION_CACHE=redis``; the compose default keeps each worker's own), calls
the endpoints through the load balancer's published loopback port, finds the cache key in
the Redis container,
then scales the api to two replicas and shows a prediction cached by one is a hit on the
other, and that one stream posted to both replicas in turn is one stream (kept in
Redis). The stack is removed at the end whatever happened. In CI this never skips.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from container_engine import IN_CI, ComposeProject, Engine, EngineUnavailableError, find_engine

from anomaly_api.config import Settings
from anomaly_api.service.cache.base import prediction_keys
from anomaly_api.testing import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

IMAGE = "anomaly-api:latest"
IMAGE_BUDGET_BYTES = 450_000_000  # docs/deployment.md's budget, in the MB `docker images` shows
NORMAL = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]
# Run inside an api container: POST argv[1] to its own /predict, print the answer.
PREDICT_INSIDE = (
    "import sys, urllib.request as u; "
    "r = u.Request('http://127.0.0.1:8000/predict', data=sys.argv[1].encode(), "
    "headers={'Content-Type': 'application/json'}); "
    "print(u.urlopen(r, timeout=10).read().decode())"
)
# Run inside an api container: POST argv[2] (JSON) to its own path argv[1]; print
# {"status": ..., "body": ...} whatever the status (a 409 is an answer, not a crash).
POST_INSIDE = """
import json, sys, urllib.error as e, urllib.request as u
r = u.Request('http://127.0.0.1:8000' + sys.argv[1], data=sys.argv[2].encode(),
              headers={'Content-Type': 'application/json'})
try:
    with u.urlopen(r, timeout=10) as a:
        status, text = a.status, a.read().decode()
except e.HTTPError as err:
    status, text = err.code, err.read().decode()
print(json.dumps({'status': status, 'body': json.loads(text)}))
"""


def _key(prefix: str, version: str, row: Any) -> str:
    """The cache key of one row."""
    return prediction_keys(prefix, version, np.reshape(np.asarray(row, dtype=np.float64), (1, -1)))[
        0
    ]


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The container engine; only a developer machine without one may skip."""
    try:
        return find_engine()
    except EngineUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"CI must run the container test: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def project(engine: Engine) -> Iterator[ComposeProject]:
    """The built images and a started stack; torn down after the module, even on failure."""
    port = free_port()
    stack = ComposeProject(
        engine=engine,
        name=f"anomaly-ci-{os.getpid()}",
        env={
            "ANOMALY_PUBLISH_PORT": str(port),
            "ANOMALY_PUBLISH_ADDR": "127.0.0.1",
            "ANOMALY_PREDICTION_CACHE": "redis",
        },
    )
    try:
        stack.compose("build", timeout=1500)
        stack.compose("up", "--detach", timeout=300)
        yield stack
    finally:
        print(stack.logs())
        stack.down()


@pytest.fixture(scope="module")
def client(project: ComposeProject) -> Iterator[httpx.Client]:
    """HTTP client on the load balancer's loopback port, once the service is ready.

    Ready means the api container's own health check passed and then the load balancer
    answered /health with the model loaded and the shared Redis reachable (status ``ok``)
    three times in a row.
    """
    project.wait_healthy("api", count=1)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{project.env['ANOMALY_PUBLISH_PORT']}", timeout=10
    ) as http:
        deadline = time.monotonic() + 120
        last: object = None
        streak = 0
        while streak < 3:
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after 120 s: {last}\n{project.logs()}")
            try:
                answer = http.get("/health")
                last = (answer.status_code, answer.text)
                ok = answer.status_code == 200 and answer.json()["status"] == "ok"
            except httpx.TransportError as exc:
                last, ok = exc, False
            streak = streak + 1 if ok else 0
            time.sleep(0.5)
        yield http


def image_inspect(project: ComposeProject, template: str) -> str:
    """One field of the api image's metadata."""
    return project.cli("image", "inspect", "--format", template, IMAGE).stdout.strip()


def test_image_fits_the_size_budget(project: ComposeProject) -> None:
    size = int(image_inspect(project, "{{.Size}}"))
    print(f"{IMAGE}: {size / 1e6:.0f} MB ({project.engine.name})")
    assert size <= IMAGE_BUDGET_BYTES, f"image is {size / 1e6:.0f} MB, budget 450 MB"


def test_image_runs_as_a_non_root_user(project: ComposeProject) -> None:
    assert image_inspect(project, "{{.Config.User}}") not in ("", "root", "0", "0:0")
    uid = project.cli("run", "--rm", "--entrypoint", "id", IMAGE, "-u").stdout.strip()
    assert uid.isdigit()
    assert int(uid) != 0


def test_health_reports_model_and_shared_redis_cache(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok", health
    assert health["model_loaded"] is True
    assert health["cache"] == {"backend": "redis", "ok": True}
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_model_info_describes_the_baked_in_model(client: httpx.Client) -> None:
    info = client.get("/model/info").json()
    assert info["version"] == client.get("/health").json()["model_version"]
    assert info["n_features"] == len(NORMAL)


def test_predict_twice_is_cached_in_the_redis_container(
    client: httpx.Client, project: ComposeProject
) -> None:
    body = {"features": NORMAL, "observation_id": "sensor_42_t1234"}
    first = client.post("/predict", json=body)
    second = client.post("/predict", json=body)
    assert first.status_code == second.status_code == 200
    first_json, second_json = first.json(), second.json()
    assert (first_json["cached"], second_json["cached"]) == (False, True), project.logs()
    assert first_json["is_anomaly"] is False
    for field in ("anomaly_score", "confidence", "is_anomaly", "model_version"):
        assert first_json[field] == second_json[field]
    key = _key(
        Settings.model_fields["cache_prefix"].default,
        first_json["model_version"],
        np.asarray(NORMAL, dtype=np.float64),
    )
    (redis_id,) = project.containers("redis")
    exists = project.cli("exec", redis_id, "redis-cli", "EXISTS", key).stdout.strip()
    assert exists == "1", f"{key} not in the redis container"


def test_predict_batch_scores_every_row(client: httpx.Client) -> None:
    answer = client.post(
        "/predict/batch", json={"observations": [{"features": NORMAL}, {"features": ANOMALOUS}]}
    )
    assert answer.status_code == 200
    batch = answer.json()
    assert [p["is_anomaly"] for p in batch["predictions"]] == [False, True]
    assert batch["n_anomalies"] == 1


def predict_inside(project: ComposeProject, container: str, body: dict[str, Any]) -> Any:
    """POST /predict from inside one api container, to reach that replica and no other."""
    out = project.cli("exec", container, "python", "-c", PREDICT_INSIDE, json.dumps(body))
    return json.loads(out.stdout)


def test_scaled_replicas_share_one_cache(client: httpx.Client, project: ComposeProject) -> None:
    project.compose("up", "--detach", "--no-recreate", "--scale", "api=2", timeout=300)
    first, second = project.wait_healthy("api", count=2)
    body = {"features": [0.11, -0.4, 0.93, 0.2, -1.1, 0.05, 0.7, -0.3]}
    on_first = predict_inside(project, first, body)
    on_second = predict_inside(project, second, body)
    assert (on_first["cached"], on_second["cached"]) == (False, True), project.logs()
    assert on_first["anomaly_score"] == on_second["anomaly_score"]
    # The load balancer still answers with both replicas behind it.
    for _ in range(4):
        assert client.post("/predict", json=body).json()["cached"] is True


def post_inside(project: ComposeProject, container: str, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to ``path`` inside one api container: ``{"status", "body"}``."""
    out = project.cli("exec", container, "python", "-c", POST_INSIDE, path, json.dumps(body))
    return json.loads(out.stdout)


def test_scaled_replicas_serve_one_stream(client: httpx.Client, project: ComposeProject) -> None:
    """Readings of one stream posted to each replica in turn make ONE stream, kept in Redis.

    The stack's model is point-wise: it answers stream requests too and keeps the last
    timestamp, so an old timestamp is refused (409) by the replica that did not take it.
    """
    project.compose("up", "--detach", "--no-recreate", "--scale", "api=2", timeout=300)
    replicas = project.wait_healthy("api", count=2)
    stream_id = f"ci-stream-{os.getpid()}"
    path = f"/streams/{stream_id}/readings"
    stamps = [f"2026-11-29T12:{minute:02d}:00Z" for minute in range(0, 60, 5)]
    answered_by: list[str] = []
    for i, stamp in enumerate(stamps):
        replica = replicas[i % 2]
        answer = post_inside(project, replica, path, {"timestamps": [stamp], "readings": [NORMAL]})
        assert answer["status"] == 200, answer
        # Each replica sees every reading the other one took: total grows by one per post.
        assert answer["body"]["stream"]["total"] == i + 1, answer
        assert answer["body"]["stream"]["backend"] == "redis", answer
        assert answer["body"]["stream"]["degraded"] is False, (answer, project.logs())
        answered_by.append(replica)
    assert set(answered_by) == set(replicas)
    # And the load balancer, whichever replica it picks, answers the same stream.
    state = client.get(f"/streams/{stream_id}")
    assert state.status_code == 200, state.text
    assert state.json()["total"] == len(stamps)
    assert state.json()["backend"] == "redis"
    assert state.json()["last_timestamp"].startswith("2026-11-29T12:55:00")
    # The last reading went to replicas[1]; replicas[0] refuses an older timestamp.
    stale = post_inside(
        project, replicas[0], path, {"timestamps": [stamps[-2]], "readings": [NORMAL]}
    )
    assert stale["status"] == 409, stale
    assert stale["body"]["error"]["code"] == "stream_order", stale
    assert client.get(f"/streams/{stream_id}").json()["total"] == len(stamps)
    (redis_id,) = project.containers("redis")
    prefix = Settings.model_fields["stream_prefix"].default
    keys = project.cli(
        "exec", redis_id, "redis-cli", "--scan", "--pattern", f"{prefix}*"
    ).stdout.split()
    assert f"{prefix}w:{stream_id}" in keys, keys


def prometheus_targets(port: int) -> list[dict[str, Any]]:
    """Prometheus's active scrape targets of the api job (empty while it starts)."""
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5)
    except httpx.TransportError:
        return []
    if answer.status_code != 200:
        return []
    targets: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
    return [t for t in targets if t["labels"].get("job") == "anomaly-api"]


def test_monitoring_profile_scrapes_every_replica(project: ComposeProject) -> None:
    """`--profile monitoring` adds Prometheus; it finds both api replicas and loads the rules."""
    port = free_port()
    project.env["ANOMALY_PROMETHEUS_PORT"] = str(port)
    project.compose("--profile", "monitoring", "build", "prometheus", timeout=1200)
    project.compose(
        "--profile",
        "monitoring",
        "up",
        "--detach",
        "--no-recreate",
        "--scale",
        "api=2",
        timeout=300,
    )
    api = project.wait_healthy("api", count=2)
    project.wait_healthy("prometheus", count=1)
    deadline = time.monotonic() + 120
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        targets = prometheus_targets(port)
        if len(targets) == len(api) and all(t["health"] == "up" for t in targets):
            break
        time.sleep(2)
    else:
        pytest.fail(f"Prometheus does not see {len(api)} healthy api targets: {targets}")
    assert {t["scrapeUrl"].rsplit("/", 1)[-1] for t in targets} == {"metrics"}
    rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()["data"]
    names = {r["name"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "AnomalyRateAboveTraining",
        "FeatureDrift",
        "RedisBreakerOpen",
        "NoReadyReplica",
    } <= names
    up = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/query",
        params={"query": 'up{job="anomaly-api"}'},
        timeout=5,
    ).json()["data"]["result"]
    assert sorted(float(r["value"][1]) for r in up) == [1.0, 1.0]
