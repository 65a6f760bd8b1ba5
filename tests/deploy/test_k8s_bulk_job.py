"""The bulk-scoring DaskJob example: the operator's structure, core schemas, and the command.

kubernetes-validate knows only core resources. The DaskJob's own structure is checked
against the Dask operator's published CRD template (``dask_kubernetes/operator/
customresources/templates.yaml``: a DaskJob holds ``job.spec``, a PodSpec, and
``cluster.spec`` with a ``scheduler`` {PodSpec ``spec``, ServiceSpec ``service``} and a
``worker`` {``replicas``, PodSpec ``spec``}); each embedded PodSpec and ServiceSpec is then
validated strictly as a core Pod/Service of the oldest supported Kubernetes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from anomaly_api.cli.main import app

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB = REPO_ROOT / "deploy" / "k8s-bulk" / "daskjob.yaml"
KUBERNETES_VERSION = "1.29"

_POD = {"type": "object"}
_DASKJOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubernetes.dask.org/v1"},
        "kind": {"const": "DaskJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["job", "cluster"],
            "properties": {
                "job": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["spec"],
                    "properties": {"spec": _POD},
                },
                "cluster": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["scheduler", "worker"],
                            "properties": {
                                "idleTimeout": {"type": "integer"},
                                "scheduler": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["spec", "service"],
                                    "properties": {"spec": _POD, "service": {"type": "object"}},
                                },
                                "worker": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["spec"],
                                    "properties": {
                                        "replicas": {"type": "integer", "minimum": 1},
                                        "spec": _POD,
                                    },
                                },
                            },
                        }
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(JOB.read_text()) if d]
    assert len(docs) == 1
    document: dict[str, Any] = docs[0]
    return document


def pod_specs(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = job["spec"]["cluster"]["spec"]
    return {
        "job": job["spec"]["job"]["spec"],
        "scheduler": cluster["scheduler"]["spec"],
        "worker": cluster["worker"]["spec"],
    }


def test_structure_matches_the_operators_crd(job: dict[str, Any]) -> None:
    jsonschema.validate(job, _DASKJOB_SCHEMA)


def test_the_structure_check_would_catch_a_misplaced_key(job: dict[str, Any]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(job))
    broken["spec"]["cluster"]["spec"]["workers"] = broken["spec"]["cluster"]["spec"].pop("worker")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _DASKJOB_SCHEMA)


@pytest.mark.parametrize("part", ["job", "scheduler", "worker"])
def test_every_pod_spec_is_a_valid_core_pod_spec(job: dict[str, Any], part: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": part},
           "spec": pod_specs(job)[part]}  # fmt: skip
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_the_scheduler_service_is_a_valid_core_service(job: dict[str, Any]) -> None:
    scheduler = job["spec"]["cluster"]["spec"]["scheduler"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "scheduler"},
               "spec": scheduler["service"]}  # fmt: skip
    kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    assert service["spec"]["selector"]["dask.org/cluster-name"] == job["metadata"]["name"]
    ports = {p["name"] for p in scheduler["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_core_validation_would_catch_a_typo(job: dict[str, Any]) -> None:
    spec = yaml.safe_load(yaml.safe_dump(pod_specs(job)["worker"]))
    spec["containers"][0]["volumeMount"] = spec["containers"][0].pop("volumeMounts")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def mounts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}


def test_the_artifact_is_mounted_read_only_where_the_job_looks(job: dict[str, Any]) -> None:
    args = job["spec"]["job"]["spec"]["containers"][0]["args"]
    artifacts_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--artifacts-dir="))
    for part in ("job", "worker"):
        spec = pod_specs(job)[part]
        mount = mounts(spec)["models"]
        assert mount["mountPath"] == artifacts_dir, part
        assert mount["readOnly"] is True, part
        volume = next(v for v in spec["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"]["readOnly"] is True, part
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True


def test_the_job_runs_a_valid_score_command_on_the_cluster(job: dict[str, Any]) -> None:
    args = job["spec"]["job"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["anomaly-api", "score"]
    assert "--engine=dask" in args
    assert "--address=$(DASK_SCHEDULER_ADDRESS)" in args  # set by the operator
    command = typer.main.get_command(app)
    with command.make_context("anomaly-api", ["--help"], resilient_parsing=True) as context:
        score = command.get_command(context, "score")  # type: ignore[attr-defined]
    assert score is not None
    parsed = score.make_context("score", list(args[2:]))  # the options parse, or this raises
    assert parsed.params["engine"] == "dask"
    assert str(parsed.params["artifacts_dir"]) == "/models"
    workers = pod_specs(job)["worker"]["containers"][0]["args"]
    assert workers[:2] == ["dask", "worker"]
