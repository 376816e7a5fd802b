"""The batch/v1 Jobs of trainer pods: pure functions of the resource and settings.

The pod runs ``python -m stevie_trainer train --spec-json "$(STEVIE_SPEC)" --out RUN_URI``;
re-running it with the same ``--out`` resumes from the latest checkpoint, so pod retries
(``backoffLimit``) are safe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from stevie_api import API_VERSION
from stevie_api.training import TrainingRun, TrainingRunSpec
from stevie_operator.config import OperatorConfig
from stevie_trainer.common import storage

__all__ = [
    "MANAGED_BY",
    "Owner",
    "child_labels",
    "fit_name",
    "job_name",
    "label_value",
    "owner_labels",
    "run_uri",
    "trainer_job",
    "training_job",
]

MANAGED_BY = "stevie-operator"
NAME_LIMIT = 63  # Job names end up in the pods' job-name label
TRAINER_UID = 65532  # "nonroot" in distroless-style images
TMP_MOUNT = "/tmp"


def _hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit_name(base: str, suffix: str, limit: int = NAME_LIMIT) -> str:
    """``base + suffix`` if it fits in ``limit``, else a truncated base, a hash and the suffix."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = _hash(base)
    keep = limit - len(suffix) - len(digest) - 1
    head = base[:keep].rstrip("-.")
    return f"{head}-{digest}{suffix}"


TRAINER_METRICS_PORT = 9090


def job_name(name: str) -> str:
    """The deterministic name of a TrainingRun's trainer Job (a DNS label, <= 63 chars)."""
    return fit_name(name, "-train")


def label_value(value: str) -> str:
    """``value`` made a valid label value (<= 63 chars, alphanumeric at both ends)."""
    return fit_name(value, "") if len(value) > NAME_LIMIT else value


def run_uri(run: TrainingRun, namespace: str, config: OperatorConfig) -> str:
    """Where the run's artifacts go: ``<root>/<namespace>/trainingruns/<name>``."""
    root = run.spec.storage.uri or config.storage_uri
    return storage.join(root, namespace, "trainingruns", run.metadata.name)


def owner_labels(kind: str, name: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of a resource's child Jobs and their pods: the resource's own labels, then
    Stevie's (``stevie.dev/kind`` and ``stevie.dev/name`` find them again)."""
    value = label_value(name)
    return {
        **(labels or {}),
        "app.kubernetes.io/name": "stevie",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/instance": value,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "stevie.dev/kind": kind,
        "stevie.dev/name": value,
    }


def child_labels(run: TrainingRun) -> dict[str, str]:
    """Labels of a TrainingRun's Job and its pods."""
    return owner_labels("TrainingRun", run.metadata.name, run.metadata.labels)


@dataclass(frozen=True)
class Owner:
    """The resource a Job belongs to: its ownerReference (garbage collection) and labels."""

    kind: str
    name: str
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def reference(self) -> list[dict[str, Any]]:
        """The Job's ownerReferences (none before the API server gave the owner a uid)."""
        if not self.uid:
            return []
        return [
            {
                "apiVersion": API_VERSION,
                "kind": self.kind,
                "name": self.name,
                "uid": self.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def _local_root(uri: str) -> PurePosixPath | None:
    """The absolute path behind a file:// (or plain absolute path) root, else None."""
    if uri.startswith("s3://"):
        return None
    path = uri.removeprefix("file://").removeprefix("localhost")
    return PurePosixPath(path) if path.startswith("/") else None


def _storage(
    run_spec: TrainingRunSpec, config: OperatorConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volume mounts, env, envFrom) for the run's artifact storage."""
    spec = run_spec.storage
    root = spec.uri or config.storage_uri
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    env: list[dict[str, Any]] = []
    env_from: list[dict[str, Any]] = []
    local = _local_root(root)
    if local is not None:
        base = PurePosixPath(config.pvc_mount_path)
        mount_path = base if local == base or base in local.parents else local
        volumes.append(
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": spec.pvc_claim_name or config.pvc},
            }
        )
        mounts.append({"name": "data", "mountPath": str(mount_path)})
    endpoint = spec.s3_endpoint_url or config.s3_endpoint_url
    if endpoint:
        env.append({"name": "STEVIE_S3_ENDPOINT_URL", "value": endpoint})
    if spec.s3_secret_ref:
        env_from.append({"secretRef": {"name": spec.s3_secret_ref}})
    return volumes, mounts, env, env_from


def _resources(run_spec: TrainingRunSpec) -> dict[str, Any]:
    res = run_spec.resources
    amounts: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = dict(amounts)
    if res.gpu > 0:
        limits["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": amounts, "limits": limits}


def trainer_job(
    *,
    name: str,
    namespace: str,
    owner: Owner,
    run_spec: TrainingRunSpec,
    config: OperatorConfig,
    command: str,
    args: Sequence[str],
    env: Sequence[Mapping[str, Any]],
    out: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job running ``python -m stevie_trainer <command> <args>``: the one pod
    template every kind shares (image, resources, scheduling, retries and deadline from
    ``run_spec``; storage volume or S3 settings; non-root, read-only root file system).

    ``env`` comes first, then the common variables; ``out`` is where the pod writes."""
    labels = {**owner_labels(owner.kind, owner.name, owner.labels), **(labels or {})}
    volumes, mounts, storage_env, env_from = _storage(run_spec, config)
    container: dict[str, Any] = {
        "name": "trainer",
        "image": run_spec.image or config.trainer_image,
        "command": ["python", "-m", "stevie_trainer", command],
        "args": list(args),
        "env": [
            *(dict(e) for e in env),
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # The trainer serves Prometheus metrics here while it runs (a PodMonitor scrapes it).
            {"name": "STEVIE_METRICS_PORT", "value": str(TRAINER_METRICS_PORT)},
            # The root file system is read-only: caches and config go to the /tmp emptyDir.
            {"name": "HOME", "value": TMP_MOUNT},
            {"name": "MPLCONFIGDIR", "value": f"{TMP_MOUNT}/matplotlib"},
            *storage_env,
        ],
        "ports": [{"name": "metrics", "containerPort": TRAINER_METRICS_PORT}],
        "resources": _resources(run_spec),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_MOUNT}, *mounts],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if env_from:
        container["envFrom"] = env_from
    if run_spec.image_pull_policy:
        container["imagePullPolicy"] = run_spec.image_pull_policy
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
    }
    if run_spec.service_account_name:
        pod_spec["serviceAccountName"] = run_spec.service_account_name
    if run_spec.node_selector:
        pod_spec["nodeSelector"] = dict(run_spec.node_selector)
    if run_spec.tolerations:
        pod_spec["tolerations"] = [t.to_dict() for t in run_spec.tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": run_spec.backoff_limit,
        "completions": 1,
        "parallelism": 1,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if run_spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = run_spec.active_deadline_seconds
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": {"stevie.dev/run-uri": out, **(annotations or {})},
    }
    owners = owner.reference()
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def training_job(run: TrainingRun, namespace: str, config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job manifest that trains ``run`` (deterministic: same input, same dict)."""
    out = run_uri(run, namespace, config)
    spec_json = json.dumps(run.spec.to_dict(), sort_keys=True, separators=(",", ":"))
    meta = run.metadata
    return trainer_job(
        name=job_name(meta.name),
        namespace=namespace,
        owner=Owner("TrainingRun", meta.name, meta.uid, meta.labels),
        run_spec=run.spec,
        config=config,
        command="train",
        args=["--spec-json", "$(STEVIE_SPEC)", "--out", out],
        env=[
            {"name": "STEVIE_SPEC", "value": spec_json},
            {"name": "STEVIE_RUN_URI", "value": out},
            {"name": "STEVIE_RUN_NAME", "value": meta.name},
            {"name": "STEVIE_RUN_NAMESPACE", "value": namespace},
        ],
        out=out,
    )
