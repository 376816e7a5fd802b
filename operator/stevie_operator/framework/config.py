"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_JOB_TTL_SECONDS",
    "DEFAULT_TRAINER_IMAGE",
    "MIN_JOB_TTL_SECONDS",
    "OperatorConfig",
]

DEFAULT_TRAINER_IMAGE = "ghcr.io/stevie-dev/stevie-trainer:0.1.0"
DEFAULT_JOB_TTL_SECONDS = 86400
MIN_JOB_TTL_SECONDS = 60


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be > 0")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list (blanks around items and empty items dropped)."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean switch: 1/true/yes/on or 0/false/no/off (empty: off); anything else is
    refused rather than read as off."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r} is not a boolean (true or false)")


def _job_ttl(env: Mapping[str, str]) -> int | None:
    """``STEVIE_JOB_TTL_SECONDS``: unset or empty, the default (a day); 0, no TTL (finished
    Jobs are kept until their owner is deleted). Anything from 1 to 59 is refused: a Job
    deleted that soon can go before the operator (restarting, or busy) has read how it ended,
    and a failed one would then be run again."""
    raw = env.get("STEVIE_JOB_TTL_SECONDS", "").strip()
    if not raw:
        return DEFAULT_JOB_TTL_SECONDS
    value = _int(env, "STEVIE_JOB_TTL_SECONDS", DEFAULT_JOB_TTL_SECONDS)
    if value == 0:
        return None
    if value < MIN_JOB_TTL_SECONDS:
        raise ValueError(
            f"STEVIE_JOB_TTL_SECONDS={raw!r} must be 0 (keep finished Jobs) or at least "
            f"{MIN_JOB_TTL_SECONDS} (seconds a finished Job is kept)"
        )
    return value


@dataclass(frozen=True)
class OperatorConfig:
    """What the operator needs to know beyond the resources themselves.

    Environment variables (all optional):

    - ``STEVIE_STORAGE_URI``: default artifact root (``file:///data/stevie``);
    - ``STEVIE_PVC``: PersistentVolumeClaim mounted into trainer pods for a file:// root
      (``stevie-data``), at ``STEVIE_PVC_MOUNT_PATH`` (``/data``);
    - ``STEVIE_TRAINER_IMAGE``: trainer image when a spec names none;
    - ``STEVIE_S3_ENDPOINT_URL``: S3 endpoint passed to trainer pods (MinIO, Ceph);
    - ``STEVIE_S3_SECRET``: Secret (keys ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``)
      given to trainer pods whose spec names no ``storage.s3SecretRef``; it must exist in the
      resource's namespace;
    - ``STEVIE_TRAINER_SERVICE_ACCOUNT``: ServiceAccount of trainer pods whose spec names
      none (the chart's, which has no API permissions; unset: the namespace's default);
    - ``STEVIE_ALLOWED_IMAGES``: comma-separated :mod:`fnmatch` patterns of the images a
      spec may name (``ghcr.io/stevie-dev/*,registry.corp/ml/*``; unset: any image). The
      default trainer image is always allowed; a resource naming another is Failed with
      reason ``ImageNotAllowed`` and no pod runs (:mod:`.admission`);
    - ``STEVIE_ALLOWED_SERVICE_ACCOUNTS``: comma-separated ServiceAccount names a spec's
      ``serviceAccountName`` may be (unset: any; ``STEVIE_TRAINER_SERVICE_ACCOUNT`` is always
      allowed); any other is Failed with reason ``ServiceAccountNotAllowed``;
    - ``STEVIE_RECONCILE_INTERVAL``: seconds between timer reconciles of each unfinished
      resource (30). Child Job events reconcile at once; the timer catches what sends no
      event: a pod stuck Pending (ImagePullBackOff, Unschedulable: the Job's status does not
      change), training progress in storage, a Secret created later. Its cost is linear:
      1,000 unfinished resources at 30 s are ~33 reconciles/s (``bench/operator_scale.py``);
      each object's first tick is spread over one more interval, so they do not all tick at
      once;
    - ``STEVIE_METRICS_PORT``: port of ``/metrics`` (8080; 0 disables the server);
    - ``STEVIE_JOB_TTL_SECONDS``: ``ttlSecondsAfterFinished`` of every trainer Job: how long
      a finished Job and its pod (and logs) stay (86400, a day; 0: kept until the resource
      is deleted; at least 60 otherwise). The reconcilers never run a finished Job again once
      it is gone: its outcome is in the status or in storage;
    - ``STEVIE_KUBE_SERVER``: API server URL to use without credentials (tests, kubectl proxy);
    - ``STEVIE_LEADER_ELECTION``: ``1``/``true`` to reconcile only while holding a
      coordination.k8s.io Lease (:mod:`.leader`), so several replicas never act at once; off
      by default (one replica, ``Recreate``);
    - ``STEVIE_LEADER_ELECTION_NAMESPACE``: the Lease's namespace (default: the pod's,
      ``POD_NAMESPACE`` or the ServiceAccount's namespace file);
    - ``STEVIE_LEADER_ELECTION_LEASE``: the Lease's name (``stevie-operator``);
    - ``STEVIE_LEADER_ELECTION_LEASE_DURATION``, ``..._RENEW_DEADLINE``, ``..._RETRY_PERIOD``:
      seconds a Lease is valid unrenewed (15, whole seconds), a leader keeps trying to renew
      before it gives up and exits (10), between tries (2): client-go's defaults;
    - ``STEVIE_LEADER_ELECTION_HEALTH_PORT``: while a follower waits for the Lease, answer
      ``GET /healthz`` on this port (the liveness probe's): kopf serves its own there only
      once it leads (0, the default: nothing).
    """

    storage_uri: str = "file:///data/stevie"
    pvc: str = "stevie-data"
    pvc_mount_path: str = "/data"
    trainer_image: str = DEFAULT_TRAINER_IMAGE
    s3_endpoint_url: str | None = None
    s3_secret: str | None = None
    trainer_service_account: str | None = None
    allowed_images: tuple[str, ...] = ()
    allowed_service_accounts: tuple[str, ...] = ()
    reconcile_interval: float = 30.0
    metrics_port: int = 8080
    job_ttl_seconds: int | None = DEFAULT_JOB_TTL_SECONDS
    kube_server: str | None = None
    leader_election: bool = False
    leader_election_namespace: str | None = None
    leader_election_lease: str = "stevie-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    leader_election_health_port: int = 0
    local: bool = False  # ``stevie run``: nothing runs Deployments (an Ensemble is not served)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Settings from the environment (``os.environ`` by default)."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            storage_uri=env.get("STEVIE_STORAGE_URI", "").strip() or defaults.storage_uri,
            pvc=env.get("STEVIE_PVC", "").strip() or defaults.pvc,
            pvc_mount_path=(
                env.get("STEVIE_PVC_MOUNT_PATH", "").strip().rstrip("/") or defaults.pvc_mount_path
            ),
            trainer_image=env.get("STEVIE_TRAINER_IMAGE", "").strip() or defaults.trainer_image,
            s3_endpoint_url=env.get("STEVIE_S3_ENDPOINT_URL", "").strip() or None,
            s3_secret=env.get("STEVIE_S3_SECRET", "").strip() or None,
            trainer_service_account=(env.get("STEVIE_TRAINER_SERVICE_ACCOUNT", "").strip() or None),
            allowed_images=_names(env, "STEVIE_ALLOWED_IMAGES"),
            allowed_service_accounts=_names(env, "STEVIE_ALLOWED_SERVICE_ACCOUNTS"),
            reconcile_interval=_float(
                env, "STEVIE_RECONCILE_INTERVAL", defaults.reconcile_interval
            ),
            metrics_port=_int(env, "STEVIE_METRICS_PORT", defaults.metrics_port),
            job_ttl_seconds=_job_ttl(env),
            kube_server=env.get("STEVIE_KUBE_SERVER", "").strip() or None,
            leader_election=_flag(env, "STEVIE_LEADER_ELECTION"),
            leader_election_namespace=(
                env.get("STEVIE_LEADER_ELECTION_NAMESPACE", "").strip() or None
            ),
            leader_election_lease=(
                env.get("STEVIE_LEADER_ELECTION_LEASE", "").strip()
                or defaults.leader_election_lease
            ),
            lease_duration=_float(
                env, "STEVIE_LEADER_ELECTION_LEASE_DURATION", defaults.lease_duration
            ),
            renew_deadline=_float(
                env, "STEVIE_LEADER_ELECTION_RENEW_DEADLINE", defaults.renew_deadline
            ),
            retry_period=_float(env, "STEVIE_LEADER_ELECTION_RETRY_PERIOD", defaults.retry_period),
            leader_election_health_port=_int(env, "STEVIE_LEADER_ELECTION_HEALTH_PORT", 0),
        )
