"""The restricted Pod Security Standard (Kubernetes' "restricted" profile, latest), as checks.

Written from the standard's control list, so the chart's and the operator's pod templates
are held to what a namespace labelled ``pod-security.kubernetes.io/enforce: restricted``
admits: a pod that fails here would be refused there (trainer pods fail *after* their Job
is created, which kmock cannot show).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["pod_specs", "violations"]

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
ALLOWED_CAPABILITIES = {"NET_BIND_SERVICE"}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


def pod_specs(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, pod spec) of a Pod, or the pod template of a workload or a CronJob."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    where = f"{kind}/{(obj.get('metadata') or {}).get('name')}"
    if kind == "Pod":
        yield where, spec
    elif kind == "CronJob":
        yield where, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        yield where, spec["template"]["spec"]


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _pod_level(spec: Mapping[str, Any]) -> list[str]:
    """Baseline and restricted controls that live on the pod."""
    found = [f"{k} is true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    for volume in spec.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= ALLOWED_VOLUMES:
            found.append(f"volume {volume.get('name')}: type {sorted(types - ALLOWED_VOLUMES)}")
    sc = spec.get("securityContext") or {}
    for sysctl in sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl.get('name')}")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("windowsOptions.hostProcess")
    if sc.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")
    if (sc.get("seLinuxOptions") or {}).get("type") not in SELINUX_TYPES:
        found.append("pod seLinuxOptions.type")
    return found


def _container_level(c: Mapping[str, Any], pod_sc: Mapping[str, Any]) -> list[str]:
    name = c.get("name")
    sc = c.get("securityContext") or {}
    found = []
    if sc.get("privileged"):
        found.append(f"{name}: privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation is not false")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        found.append(f"{name}: capabilities do not drop ALL")
    added = set(caps.get("add") or []) - ALLOWED_CAPABILITIES
    if added:
        found.append(f"{name}: adds capabilities {sorted(added)}")
    if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        found.append(f"{name}: runAsNonRoot is not true (pod or container)")
    if sc.get("runAsUser") == 0:
        found.append(f"{name}: runAsUser is 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in ALLOWED_SECCOMP:
        found.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault or Localhost")
    if sc.get("procMount") not in (None, "Default"):
        found.append(f"{name}: procMount {sc.get('procMount')}")
    for port in c.get("ports") or []:
        if port.get("hostPort"):
            found.append(f"{name}: hostPort {port['hostPort']}")
    return found


def violations(spec: Mapping[str, Any]) -> list[str]:
    """What in one pod spec the restricted profile refuses (empty: admitted)."""
    pod_sc = spec.get("securityContext") or {}
    found = _pod_level(spec)
    for c in _containers(spec):
        found += _container_level(c, pod_sc)
    return found
