"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_TRAINER_IMAGE", "OperatorConfig"]

DEFAULT_TRAINER_IMAGE = "ghcr.io/stevie-dev/stevie-trainer:0.1.0"


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


@dataclass(frozen=True)
class OperatorConfig:
    """What the operator needs to know beyond the resources themselves.

    Environment variables (all optional):

    - ``STEVIE_STORAGE_URI``: default artifact root (``file:///data/stevie``);
    - ``STEVIE_PVC``: PersistentVolumeClaim mounted into trainer pods for a file:// root
      (``stevie-data``), at ``STEVIE_PVC_MOUNT_PATH`` (``/data``);
    - ``STEVIE_TRAINER_IMAGE``: trainer image when a spec names none;
    - ``STEVIE_S3_ENDPOINT_URL``: S3 endpoint passed to trainer pods (MinIO, Ceph);
    - ``STEVIE_RECONCILE_INTERVAL``: seconds between timer reconciles of unfinished runs (10);
    - ``STEVIE_METRICS_PORT``: port of ``/metrics`` (8080; 0 disables the server);
    - ``STEVIE_KUBE_SERVER``: API server URL to use without credentials (tests, kubectl proxy).
    """

    storage_uri: str = "file:///data/stevie"
    pvc: str = "stevie-data"
    pvc_mount_path: str = "/data"
    trainer_image: str = DEFAULT_TRAINER_IMAGE
    s3_endpoint_url: str | None = None
    reconcile_interval: float = 10.0
    metrics_port: int = 8080
    kube_server: str | None = None
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
            reconcile_interval=_float(
                env, "STEVIE_RECONCILE_INTERVAL", defaults.reconcile_interval
            ),
            metrics_port=_int(env, "STEVIE_METRICS_PORT", defaults.metrics_port),
            kube_server=env.get("STEVIE_KUBE_SERVER", "").strip() or None,
        )
