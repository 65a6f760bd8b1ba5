"""Static checks of the Dockerfile, docker-compose.yml and the load balancer's config.

They hold the promises the container test cannot see from outside (nothing publishes
Redis, the image needs no curl for its health check) and run without any engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services of docker-compose.yml."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    """The Dockerfile with continuation lines joined."""
    return (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def test_api_waits_for_a_healthy_redis_and_uses_it(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    # Each worker's own cache unless the operator asks for the shared one
    assert api["environment"]["ANOMALY_PREDICTION_CACHE"] == "${ANOMALY_PREDICTION_CACHE:-memory}"
    assert api["restart"] == "unless-stopped"
    assert "healthcheck" in api
    # Replicas publish nothing (so `--scale` never collides on a host port) and run
    # on a read-only root filesystem with a writable /tmp.
    assert "ports" not in api
    assert api["read_only"] is True
    assert api["tmpfs"] == ["/tmp"]


def test_replicas_share_one_artifact_volume(services: dict[str, Any], dockerfile: str) -> None:
    """Named models and trained versions live in the artifact directory: every replica
    mounts the one named volume there (seeded from the image's model, owned by the
    service's user so that it can write to it)."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert "artifacts" in compose["volumes"]
    target = re.search(r"ANOMALY_ARTIFACTS_DIR=(\S+)", dockerfile)
    assert target is not None
    assert services["api"]["volumes"] == [f"artifacts:{target[1]}"]
    assert f"--chown=${{APP_UID}}:${{APP_UID}} {target[1]} {target[1]}" in dockerfile


def test_keys_pass_from_the_shell_or_env_file(services: dict[str, Any]) -> None:
    """Behind the load balancer no request is loopback: admin routes need the key."""
    environment = services["api"]["environment"]
    assert environment["ANOMALY_ADMIN_API_KEYS"] == "${ANOMALY_ADMIN_API_KEYS:-}"
    assert environment["ANOMALY_API_KEYS"] == "${ANOMALY_API_KEYS:-}"


def test_replicas_serve_on_the_standard_loop_with_a_bound(services: dict[str, Any]) -> None:
    environment = services["api"]["environment"]
    assert environment["ANOMALY_LOOP"] == "${ANOMALY_LOOP:-asyncio}"
    assert environment["ANOMALY_MAX_IN_FLIGHT"] == "${ANOMALY_MAX_IN_FLIGHT:-256}"


def test_redis_is_a_capped_lru_cache_with_no_host_port(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"] == "redis:7-alpine"
    assert "ports" not in redis
    command = redis["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert "--maxmemory" in command
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_only_the_load_balancer_publishes_on_loopback_by_default(
    services: dict[str, Any],
) -> None:
    # Services in a profile (`--profile monitoring`) only start when asked for.
    published = [
        name
        for name, service in services.items()
        if "ports" in service and "profiles" not in service
    ]
    assert published == ["lb"]
    (mapping,) = services["lb"]["ports"]
    assert mapping.startswith("${ANOMALY_PUBLISH_ADDR:-127.0.0.1}:")
    assert mapping.endswith(":8080")


def test_load_balancer_follows_every_api_replica() -> None:
    config = (REPO_ROOT / "deploy" / "compose" / "lb" / "haproxy.cfg").read_text()
    assert re.search(r"server-template \w+ \d+ api:8000 check", config)
    assert "option httpchk GET /health/ready" in config
    assert "bind :8080" in config


def test_image_is_multi_stage_non_root_and_self_checking(dockerfile: str) -> None:
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\} AS \w+", dockerfile, re.MULTILINE)) == 2
    assert re.search(r"^RUN anomaly-api train", dockerfile, re.MULTILINE)
    (user,) = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user not in ("root", "0", "0:0")
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.MULTILINE)
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", dockerfile, re.MULTILINE)
    assert "/health/ready" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    assert "ANOMALY_HOST=0.0.0.0" in dockerfile
    assert "ANOMALY_LOOP=asyncio" in dockerfile


def test_build_context_keeps_local_state_out() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # An allow-list: everything is excluded, then only what the build needs comes back.
    assert patterns[patterns.index("*") + 1 :][:5] == [
        "!pyproject.toml",
        "!setup.py",  # declares the C scoring kernel
        "!README.md",
        "!src/",
        "!deploy/docker/",
    ]


def test_the_watcher_runs_its_valid_watch_yaml_on_the_shared_redis(
    services: dict[str, Any],
) -> None:
    from anomaly_api.watch.config import load_watch_config

    watch = services["watch"]
    assert watch["profiles"] == ["watch"]
    assert watch["image"] == services["api"]["image"]
    assert watch["environment"]["REDIS_URL"] == services["api"]["environment"]["REDIS_URL"]
    assert watch["depends_on"]["redis"]["condition"] == "service_healthy"
    (mount,) = watch["volumes"]
    host, inside, mode = mount.split(":")
    assert mode == "ro"
    assert watch["command"] == ["anomaly-api", "watch", "--config", inside]
    config = load_watch_config(REPO_ROOT / host)
    assert config.state == "redis"
    assert [str(config.metrics.port)] == watch["expose"]
