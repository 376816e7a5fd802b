"""A TrainingRun's trainer Job on the shared pod template: deterministic, valid for Kubernetes
1.30, complete."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import kubernetes_validate
import pytest

from stevie_api.naming import label_value
from stevie_api.training import TrainingRun
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.trainingrun.children import job_name, training_job
from support.paths import example

QUICKSTART = example("trainingrun-quickstart.yaml")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def run(name: str = "quick", **spec: Any) -> TrainingRun:
    doc = copy.deepcopy(QUICKSTART)
    doc["metadata"] = {"name": name, "namespace": "team-a", "uid": "uid-1", "labels": {"team": "a"}}
    doc["spec"].update(spec)
    return TrainingRun.model_validate(doc)


def container(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return result


def env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(job)["env"]}


def test_quickstart_job_is_valid_and_complete() -> None:
    job = training_job(run(), "team-a", OperatorConfig())
    kubernetes_validate.validate(job, "1.30", strict=True)
    meta = job["metadata"]
    assert meta["name"] == "quick-train"
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["team"] == "a"
    assert meta["labels"]["app.kubernetes.io/name"] == "stevie"
    assert meta["labels"]["stevie.dev/kind"] == "TrainingRun"
    assert meta["labels"]["stevie.dev/name"] == "quick"
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "stevie.dev/v1alpha1",
            "kind": "TrainingRun",
            "name": "quick",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = job["spec"]
    assert spec["backoffLimit"] == 3
    assert "activeDeadlineSeconds" not in spec
    assert spec["ttlSecondsAfterFinished"] == 86400  # a day, then the Job and its pod go
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(job)
    assert c["image"] == "ghcr.io/stevie-dev/stevie-trainer:0.1.0"
    assert c["command"] == ["python", "-m", "stevie_trainer", "train"]
    out = "file:///data/stevie/team-a/trainingruns/quick/uid-1"  # keyed by the object
    assert c["args"] == ["--spec-json", "$(STEVIE_SPEC)", "--out", out]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    # The spec round-trips: the trainer validates exactly what the user wrote.
    spec_json = json.loads(env(job)["STEVIE_SPEC"])
    assert TrainingRun.model_validate({**QUICKSTART, "spec": spec_json}).spec == run().spec
    # The PVC is mounted at /data, where file:///data/stevie lives; /tmp is writable.
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "stevie-data"}} in pod["volumes"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert "envFrom" not in c


def test_same_input_same_manifest() -> None:
    assert training_job(run(), "ns", OperatorConfig()) == training_job(
        run(), "ns", OperatorConfig()
    )


def test_gpu_scheduling_image_and_deadline() -> None:
    tr = run(
        resources={"cpu": "8", "memory": "32Gi", "gpu": 2},
        nodeSelector={"accelerator": "a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        image="registry.local/trainer:dev",
        imagePullPolicy="Always",
        backoffLimit=1,
        activeDeadlineSeconds=3600,
        serviceAccountName="trainer",
    )
    job = training_job(tr, "ns", OperatorConfig())
    kubernetes_validate.validate(job, "1.30", strict=True)
    c = container(job)
    assert c["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert "nvidia.com/gpu" not in c["resources"]["requests"]
    assert c["image"] == "registry.local/trainer:dev"
    assert c["imagePullPolicy"] == "Always"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "a100"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["serviceAccountName"] == "trainer"
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 3600


def test_s3_storage_uses_the_secret_and_endpoint_and_no_pvc() -> None:
    tr = run(
        storage={
            "uri": "s3://models/stevie",
            "s3SecretRef": "minio-creds",
            "s3EndpointUrl": "http://minio.minio:9000",
        }
    )
    job = training_job(tr, "ns", OperatorConfig())
    kubernetes_validate.validate(job, "1.30", strict=True)
    c = container(job)
    assert c["args"][-1] == "s3://models/stevie/ns/trainingruns/quick/uid-1"
    assert c["envFrom"] == [{"secretRef": {"name": "minio-creds"}}]
    assert env(job)["STEVIE_S3_ENDPOINT_URL"] == "http://minio.minio:9000"
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["tmp"]


def test_operator_settings_apply() -> None:
    config = OperatorConfig.from_env(
        {
            "STEVIE_STORAGE_URI": "file:///mnt/runs",
            "STEVIE_PVC": "shared",
            "STEVIE_TRAINER_IMAGE": "example/trainer:1",
            "STEVIE_S3_ENDPOINT_URL": "http://s3.local",
        }
    )
    job = training_job(run(), "ns", config)
    c = container(job)
    assert c["image"] == "example/trainer:1"
    assert c["args"][-1] == "file:///mnt/runs/ns/trainingruns/quick/uid-1"
    # The root is not under the default mount path: the claim is mounted at the root itself.
    assert {"name": "data", "mountPath": "/mnt/runs"} in c["volumeMounts"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}} in (
        job["spec"]["template"]["spec"]["volumes"]
    )
    assert env(job)["STEVIE_S3_ENDPOINT_URL"] == "http://s3.local"


@pytest.mark.parametrize("length", [1, 57, 58, 63, 100, 253])
def test_job_names_are_dns_labels_and_unique(length: int) -> None:
    name = ("a" * (length - 1) + "b")[:length]
    other = ("a" * (length - 1) + "c")[:length]
    job = job_name(name)
    assert len(job) <= 63
    assert DNS_LABEL.match(job)
    assert job.endswith("-train")
    if length > 1:
        assert job != job_name(other)
    assert len(label_value(name)) <= 63


def test_long_names_still_validate() -> None:
    name = "a-very-long-training-run-name." + "x" * 100
    job = training_job(run(name), "ns", OperatorConfig())
    kubernetes_validate.validate(job, "1.30", strict=True)
    assert job["metadata"]["labels"]["stevie.dev/name"] == label_value(name)
    assert job["metadata"]["ownerReferences"][0]["name"] == name
