"""A kmock kubelet (:class:`support.kubelet.Kubelet`) for Jobs in several namespaces, whose
Secret references resolve as a pod's do: ``env[].valueFrom.secretKeyRef`` and
``envFrom[].secretRef`` from the Secrets in kmock, in the Job's namespace. A resource in
another namespace with its own S3 Secret and RDB Secret runs its trainer processes with
exactly the keys the Job names (and none if the Secret is missing: the process fails).

Two namespaces may hold Jobs of one name (two HPOStudies named alike): the processes are
keyed ``<namespace>.<name>``.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support.kmock import Cluster
from support.kubelet import Kubelet

__all__ = ["NamespacedKubelet", "jobs_path"]


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


class NamespacedKubelet(Kubelet):
    """Runs the Jobs of ``namespaces``; use as a context manager around the operator."""

    def __init__(
        self, cluster: Cluster, logs: Path, namespaces: Sequence[str], every: float = 0.2
    ) -> None:
        super().__init__(cluster, logs, every)
        self.namespaces = tuple(namespaces)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for namespace in self.namespaces:
                for job in (self.cluster.api("GET", jobs_path(namespace)) or {}).get("items", []):
                    self._tend_in(namespace, job)

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        found = self.cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data = (found or {}).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _with_env_from(self, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
        """The Job with its container's envFrom Secrets spelled out as secretKeyRefs, first
        (a pod's ``env`` wins over its ``envFrom``), and its name made ``<ns>.<name>``."""
        run = copy.deepcopy(job)
        run["metadata"]["name"] = f"{namespace}.{job['metadata']['name']}"
        container = run["spec"]["template"]["spec"]["containers"][0]
        spelled: list[dict[str, Any]] = []
        for source in container.pop("envFrom", []):
            ref = source.get("secretRef") or {}
            for key in self._secret(namespace, str(ref.get("name"))):
                name = f"{source.get('prefix', '')}{key}"
                value_from = {"secretKeyRef": {"name": ref.get("name"), "key": key}}
                spelled.append({"name": name, "valueFrom": value_from})
        container["env"] = [*spelled, *container.get("env", [])]
        return run

    def _tend_in(self, namespace: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        key = f"{namespace}.{name}"
        if key not in self.launcher.processes:
            lookup = lambda secret, k: self._secret(namespace, secret).get(k)  # noqa: E731
            run = self._with_env_from(namespace, job)
            self.launcher.start(run, lookup, self.logs / f"{key}.log")
        status = self.launcher.status(key)
        if status is not None and status != self.reported.get(key):
            self.cluster.api("PATCH", f"{jobs_path(namespace)}/{name}/status", {"status": status})
            self.reported[key] = status
