"""The kustomize base renders, every object is schema-valid, and the objects agree.

Schemas ship inside the pinned ``kubernetes-validate`` package, so this runs offline.
``kubectl`` comes from Debian (installed by ``.ci/run``); without it, only a developer
machine may skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from anomaly_api.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = REPO_ROOT / "deploy" / "k8s"
# The oldest Kubernetes minor release the manifests promise to work on.
KUBERNETES_VERSION = "1.29"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    """Objects produced by ``kubectl kustomize deploy/k8s``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is missing in CI: .ci/run must install it")
        pytest.skip("kubectl is not installed (apt-get install kubectl)")
    out = subprocess.run(
        [kubectl, "kustomize", str(BASE)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    """The single rendered object of ``kind`` called ``name``."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def api_container(objects: list[Manifest]) -> Manifest:
    """The API container of the API Deployment."""
    pod = one(objects, "Deployment", "anomaly-api")["spec"]["template"]["spec"]
    container: Manifest = pod["containers"][0]
    return container


def test_renders_every_expected_object(rendered: list[Manifest]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == [
        ("ConfigMap", "anomaly-api-config"),
        ("ConfigMap", "anomaly-api-watch"),
        ("Deployment", "anomaly-api"),
        ("Deployment", "anomaly-api-redis"),
        ("Deployment", "anomaly-api-watch"),
        ("HorizontalPodAutoscaler", "anomaly-api"),
        ("PersistentVolumeClaim", "anomaly-api-artifacts"),
        ("PodDisruptionBudget", "anomaly-api"),
        ("Service", "anomaly-api"),
        ("Service", "anomaly-api-redis"),
    ]


def test_every_object_validates_against_the_kubernetes_schema(rendered: list[Manifest]) -> None:
    for obj in rendered:
        # strict: unknown fields (typos) fail too. A missing schema raises, never passes.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_validation_would_catch_a_typo(rendered: list[Manifest]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(one(rendered, "Deployment", "anomaly-api")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_api_deployment_is_replicated_probed_and_bounded(rendered: list[Manifest]) -> None:
    deployment = one(rendered, "Deployment", "anomaly-api")
    assert deployment["spec"]["replicas"] >= 2
    container = api_container(rendered)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["ports"][0]["containerPort"] == 8000
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 5


def test_keys_come_from_an_optional_secret_never_the_configmap(rendered: list[Manifest]) -> None:
    """Without the Secret the pods start (admin routes then answer loopback only)."""
    sources = api_container(rendered)["envFrom"]
    assert {"secretRef": {"name": "anomaly-api-keys", "optional": True}} in sources
    config = one(rendered, "ConfigMap", "anomaly-api-config")["data"]
    assert not [name for name in config if "KEY" in name]


def test_pods_serve_on_the_standard_loop_with_a_bound(rendered: list[Manifest]) -> None:
    config = one(rendered, "ConfigMap", "anomaly-api-config")["data"]
    assert config["ANOMALY_LOOP"] == "asyncio"
    assert int(config["ANOMALY_MAX_IN_FLIGHT"]) > 0


def test_api_pod_is_non_root_with_read_only_root_and_writable_tmp(
    rendered: list[Manifest],
) -> None:
    pod = one(rendered, "Deployment", "anomaly-api")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = api_container(rendered)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts == {"tmp": "/tmp", "artifacts": "/opt/anomaly-api/artifacts"}
    assert "emptyDir" in volumes["tmp"]


def test_replicas_share_one_artifact_volume_seeded_from_the_image(
    rendered: list[Manifest],
) -> None:
    """Named models and trained versions live in the artifact directory: every replica
    mounts the same ReadWriteMany claim there, writable by the service's group, and an
    init container copies the image's model into it while it has none."""
    pod = one(rendered, "Deployment", "anomaly-api")["spec"]["template"]["spec"]
    claim = one(rendered, "PersistentVolumeClaim", "anomaly-api-artifacts")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == "anomaly-api-artifacts"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    (seed,) = pod["initContainers"]
    assert seed["image"] == api_container(rendered)["image"]
    assert {m["name"]: m["mountPath"] for m in seed["volumeMounts"]} == {
        "artifacts": "/mnt/artifacts"
    }
    script = seed["command"][-1]
    assert '"/opt/anomaly-api/artifacts", target' in script
    assert 'target = pathlib.Path("/mnt/artifacts")' in script
    assert '(target / "LATEST").exists() or' in script  # never over a populated volume
    assert seed["securityContext"]["readOnlyRootFilesystem"] is True


def test_selectors_match_the_pods_they_target(rendered: list[Manifest]) -> None:
    deployment = one(rendered, "Deployment", "anomaly-api")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert one(rendered, "Service", "anomaly-api")["spec"]["selector"] == selector
    assert one(rendered, "PodDisruptionBudget", "anomaly-api")["spec"]["selector"] == {
        "matchLabels": selector
    }
    hpa = one(rendered, "HorizontalPodAutoscaler", "anomaly-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "anomaly-api",
    }
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] > hpa["minReplicas"]


def test_replicas_share_the_redis_the_base_deploys(rendered: list[Manifest]) -> None:
    config = one(rendered, "ConfigMap", "anomaly-api-config")["data"]
    container = api_container(rendered)
    assert {"configMapRef": {"name": "anomaly-api-config"}} in container["envFrom"]
    redis_service = one(rendered, "Service", "anomaly-api-redis")
    port = redis_service["spec"]["ports"][0]["port"]
    assert config["REDIS_URL"].startswith(f"redis://anomaly-api-redis:{port}/")
    redis_pods = one(rendered, "Deployment", "anomaly-api-redis")["spec"]["template"]
    assert redis_service["spec"]["selector"].items() <= redis_pods["metadata"]["labels"].items()
    args = redis_pods["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert "--maxmemory" in args


def test_image_tag_is_pinned_by_kustomize(rendered: list[Manifest]) -> None:
    image = api_container(rendered)["image"]
    assert image.startswith("anomaly-api:")
    assert not image.endswith(":latest")


def test_every_configmap_setting_is_a_real_settings_field(rendered: list[Manifest]) -> None:
    config = one(rendered, "ConfigMap", "anomaly-api-config")["data"]
    fields = set(Settings.model_fields)
    for name in config:
        if name == "REDIS_URL":
            continue
        assert name.startswith("ANOMALY_"), name
        assert name.removeprefix("ANOMALY_").lower() in fields, f"{name} is not a setting"
    # And the values parse: a typo in a number would only show when a pod starts.
    settings = Settings.model_validate(
        {k.removeprefix("ANOMALY_").lower(): v for k, v in config.items() if k != "REDIS_URL"}
        | {"redis_url": config["REDIS_URL"]}
    )
    assert settings.cache_ttl_s > 0
    assert settings.prediction_cache == "memory"  # Redis for streams, not on every /predict


def test_one_watcher_runs_the_configmaps_valid_watch_yaml(rendered: list[Manifest]) -> None:
    from anomaly_api.watch.config import parse_watch_config

    deployment = one(rendered, "Deployment", "anomaly-api-watch")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:3] == ["anomaly-api", "watch", "--config"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["command"][3] == f"{mounts['config']}/watch.yaml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "anomaly-api-watch"
    assert {"configMapRef": {"name": "anomaly-api-config"}} in container["envFrom"]
    config = parse_watch_config(
        yaml.safe_load(one(rendered, "ConfigMap", "anomaly-api-watch")["data"]["watch.yaml"])
    )
    assert config.metrics.port == container["ports"][0]["containerPort"]
    assert config.state == "redis"
    # The watcher is no API replica: the Service and the disruption budget do not pick it.
    selector = one(rendered, "Service", "anomaly-api")["spec"]["selector"]
    assert not selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
