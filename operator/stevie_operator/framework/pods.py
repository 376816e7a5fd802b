"""The pod template every kind's trainer Jobs share: pure functions of the resource and
the operator's settings.

A trainer Job runs ``python -m stevie_trainer <command> <args>`` with the image, resources,
scheduling, retries and deadline of a TrainingRun spec (a TrainingRun's own, or the template
of an HPOStudy or a PBTPopulation), the storage volume or S3 settings, and a restricted
security context (non-root, read-only root file system, no capabilities). Every command
resumes when run again with the same ``--out``, so pod retries (``backoffLimit``) are safe.

What a real cluster does to Jobs, and how the manifest answers it:

* a finished Job and its pod are deleted ``ttlSecondsAfterFinished`` after they end
  (``STEVIE_JOB_TTL_SECONDS``): a population's hundreds of interval Jobs do not pile up, and
  every kind keeps the outcome of a finished Job that is gone (status, storage);
* ``podReplacementPolicy: Failed``: a replacement pod starts only once the old one has fully
  terminated, so two pods never write the same ``--out`` (an evicted pod still shutting
  down, a new one starting);
* ``podFailurePolicy``: the Job fails at once when the trainer exits with a code no retry
  can fix (:data:`stevie_api.exit_codes.FAIL_JOB`: usage, bad input, conflict), and a pod
  disrupted by preemption, eviction or a node drain (pod condition ``DisruptionTarget``) is
  replaced without counting against ``backoffLimit``; crashes and OOM kills are retried;
* no service account token (the trainer never calls the API), no Istio sidecar (a sidecar
  that never exits keeps a Job from completing), ``fsGroupChangePolicy: OnRootMismatch``
  (no recursive chown of the shared volume at every pod start), and
  ``terminationMessagePolicy: FallbackToLogsOnError`` (the last log lines of a failed pod
  show in its status and ``kubectl describe``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

from stevie_api import API_VERSION, exit_codes
from stevie_api.common import ObjectMeta
from stevie_api.naming import label_value
from stevie_api.runtime import ImagePullPolicy, Resources, StorageSpec, Toleration
from stevie_operator.framework.config import OperatorConfig

__all__ = [
    "CONTAINER",
    "KIND_LABEL",
    "MANAGED_BY",
    "NAME_LABEL",
    "NO_SIDECAR",
    "ROLE_LABEL",
    "TRAINER_METRICS_PORT",
    "Owner",
    "PodSettings",
    "TrainerCommand",
    "owner_labels",
    "pod_template",
    "trainer_job",
]

MANAGED_BY = "stevie-operator"
KIND_LABEL = "stevie.dev/kind"
"""The owner's kind, on every child and its pods (children are listed by it)."""
NAME_LABEL = "stevie.dev/name"
"""The owner's name (fitted to a label value)."""
ROLE_LABEL = "stevie.dev/role"
"""What a child does for its owner: train, trial, interval, finish..."""
TRAINER_UID = 65532  # "nonroot" in distroless-style images
TRAINER_METRICS_PORT = 9090
TMP_MOUNT = "/tmp"
CONTAINER = "trainer"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}
"""Pod annotations of every Job's pods: an injected mesh sidecar never exits, so the pod,
and the Job, would never complete."""


class _Resource(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def metadata(self) -> ObjectMeta: ...


class PodSettings(Protocol):
    """Where and how a resource's pods run (a TrainingRunSpec, an EnsembleSpec)."""

    @property
    def storage(self) -> StorageSpec: ...
    @property
    def image(self) -> str | None: ...
    @property
    def image_pull_policy(self) -> ImagePullPolicy | None: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def node_selector(self) -> dict[str, str]: ...
    @property
    def tolerations(self) -> list[Toleration]: ...
    @property
    def backoff_limit(self) -> int: ...
    @property
    def active_deadline_seconds(self) -> int | None: ...
    @property
    def service_account_name(self) -> str | None: ...


@dataclass(frozen=True)
class Owner:
    """The resource a child belongs to: its ownerReference (garbage collection) and labels."""

    kind: str
    name: str
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, resource: _Resource) -> Owner:
        """The owner reference of a validated resource."""
        meta = resource.metadata
        return cls(resource.kind, meta.name, meta.uid, meta.labels)

    def reference(self) -> list[dict[str, Any]]:
        """The child's ownerReferences (none before the API server gave the owner a uid)."""
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


def owner_labels(kind: str, name: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of a resource's children and their pods: the resource's own labels, then
    Stevie's (``stevie.dev/kind`` and ``stevie.dev/name`` find them again)."""
    value = label_value(name)
    return {
        **(labels or {}),
        "app.kubernetes.io/name": "stevie",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/instance": value,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        KIND_LABEL: kind,
        NAME_LABEL: value,
    }


@dataclass(frozen=True)
class TrainerCommand:
    """One ``python -m stevie_trainer`` invocation: the command, its arguments, extra
    environment (first in the container's env), and ``out``, where it writes."""

    command: str
    args: Sequence[str]
    out: str
    env: Sequence[Mapping[str, Any]] = ()


def _local_root(uri: str) -> PurePosixPath | None:
    """The absolute path behind a file:// (or plain absolute path) root, else None."""
    if uri.startswith("s3://"):
        return None
    path = uri.removeprefix("file://").removeprefix("localhost")
    return PurePosixPath(path) if path.startswith("/") else None


@dataclass(frozen=True)
class _Storage:
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    env: list[dict[str, Any]]
    env_from: list[dict[str, Any]]


TRAINER_S3_OUTAGE = "300"
"""Seconds a trainer pod keeps retrying an unreachable S3 endpoint before a call fails
(``STEVIE_S3_OUTAGE_SECONDS``): each Job retry would lose the work since the last
checkpoint, and ``backoffLimit`` retries last about as long as a short outage."""


def _storage(run_spec: PodSettings, config: OperatorConfig) -> _Storage:
    """Volumes, mounts and environment for the run's artifact storage."""
    spec = run_spec.storage
    found = _Storage([], [], [], [])
    local = _local_root(spec.uri or config.storage_uri)
    if local is not None:
        base = PurePosixPath(config.pvc_mount_path)
        mount_path = base if local == base or base in local.parents else local
        claim = {"claimName": spec.pvc_claim_name or config.pvc}
        found.volumes.append({"name": "data", "persistentVolumeClaim": claim})
        found.mounts.append({"name": "data", "mountPath": str(mount_path)})
    endpoint = spec.s3_endpoint_url or config.s3_endpoint_url
    if endpoint:
        found.env.append({"name": "STEVIE_S3_ENDPOINT_URL", "value": endpoint})
    if local is None:  # s3:// artifacts: ride out an outage instead of failing the pod
        found.env.append({"name": "STEVIE_S3_OUTAGE_SECONDS", "value": TRAINER_S3_OUTAGE})
    secret = spec.s3_secret_ref or config.s3_secret
    if secret:
        found.env_from.append({"secretRef": {"name": secret}})
    return found


def _resources(run_spec: PodSettings) -> dict[str, Any]:
    res = run_spec.resources
    amounts: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = dict(amounts)
    if res.gpu > 0:
        limits["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": amounts, "limits": limits}


def _container(
    run: TrainerCommand, run_spec: PodSettings, config: OperatorConfig, store: _Storage
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": run_spec.image or config.trainer_image,
        "command": ["python", "-m", "stevie_trainer", run.command],
        "args": list(run.args),
        "env": [
            *(dict(e) for e in run.env),
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # The trainer serves Prometheus metrics here while it runs (a PodMonitor scrapes it).
            {"name": "STEVIE_METRICS_PORT", "value": str(TRAINER_METRICS_PORT)},
            # The root file system is read-only: caches and config go to the /tmp emptyDir.
            {"name": "HOME", "value": TMP_MOUNT},
            {"name": "MPLCONFIGDIR", "value": f"{TMP_MOUNT}/matplotlib"},
            *store.env,
        ],
        "ports": [{"name": "metrics", "containerPort": TRAINER_METRICS_PORT}],
        "resources": _resources(run_spec),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_MOUNT}, *store.mounts],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if store.env_from:
        container["envFrom"] = store.env_from
    if run_spec.image_pull_policy:
        container["imagePullPolicy"] = run_spec.image_pull_policy
    return container


def _pod_spec(
    container: dict[str, Any],
    run_spec: PodSettings,
    config: OperatorConfig,
    store: _Storage,
    restart: str = "Never",
) -> Any:
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *store.volumes],
    }
    account = run_spec.service_account_name or config.trainer_service_account
    if account:
        pod_spec["serviceAccountName"] = account
    if run_spec.node_selector:
        pod_spec["nodeSelector"] = dict(run_spec.node_selector)
    if run_spec.tolerations:
        pod_spec["tolerations"] = [t.to_dict() for t in run_spec.tolerations]
    return pod_spec


def pod_template(
    run: TrainerCommand,
    run_spec: PodSettings,
    config: OperatorConfig,
    labels: Mapping[str, str],
    *,
    restart: str = "Never",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The trainer pod template (metadata and spec) running ``run``: what a Job and the
    Ensemble's Deployment both run."""
    store = _storage(run_spec, config)
    spec = _pod_spec(_container(run, run_spec, config, store), run_spec, config, store, restart)
    metadata: dict[str, Any] = {"labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": spec}


def _pod_failure_policy() -> dict[str, Any]:
    """Disruptions first: a preempted or evicted pod is replaced, whatever its exit code;
    then the trainer's hopeless exit codes fail the Job; anything else counts as usual."""
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": list(exit_codes.FAIL_JOB),
                },
            },
        ]
    }


def trainer_job(
    *,
    name: str,
    namespace: str,
    owner: Owner,
    run_spec: PodSettings,
    config: OperatorConfig,
    run: TrainerCommand,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job running ``run`` in the one pod template every kind shares
    (deterministic: the same inputs give the same dict). ``annotations`` go on the Job and
    its pods."""
    labels = {**owner_labels(owner.kind, owner.name, owner.labels), **(labels or {})}
    pod_annotations = {**NO_SIDECAR, **(annotations or {})}
    job_spec: dict[str, Any] = {
        "backoffLimit": run_spec.backoff_limit,
        "completions": 1,
        "parallelism": 1,
    }
    if config.job_ttl_seconds is not None:
        job_spec["ttlSecondsAfterFinished"] = config.job_ttl_seconds
    if run_spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = run_spec.active_deadline_seconds
    job_spec["podReplacementPolicy"] = "Failed"
    job_spec["podFailurePolicy"] = _pod_failure_policy()
    job_spec["template"] = pod_template(run, run_spec, config, labels, annotations=pod_annotations)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": {"stevie.dev/run-uri": run.out, **(annotations or {})},
    }
    owners = owner.reference()
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
