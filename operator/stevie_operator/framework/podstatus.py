"""Why a Job's (or a Deployment's) pods do not run: a pure function of the pods and Events
the API server holds, as JSON.

A Job's status alone cannot tell: the Job controller counts a Pending pod as ``active``, so
a pod that can never start (its image cannot be pulled, no node fits it, a Secret it reads
is missing, a volume does not mount) looks like a running one, and a pod the API server
refuses to create (a ResourceQuota, Pod Security admission) is only an Event on the Job.
:func:`report` reads what ``kubectl describe`` shows, in the order the kubelet and the
scheduler reach them:

1. a container waiting for a reason no retry fixes by itself (``ImagePullBackOff``,
   ``CreateContainerConfigError``...: its ``state.waiting``, as KubeRay's HeadPodReady
   condition takes the pod's own reason and message);
2. ``PodScheduled`` False (``Unschedulable``, with the scheduler's "0/3 nodes are
   available: ..."); a Deployment's ``ReplicaFailure`` condition (its ReplicaSet could not
   create a pod);
3. the Events, read only where status says nothing: a pod Pending with no such reason
   (``FailedMount``, ``FailedAttachVolume`` are Events on the pod) and a Job with no pod at
   all (``FailedCreate`` on the Job: "exceeded quota", "violates PodSecurity", as KubeRay's
   RayClusterReplicaFailure/FailedCreateHeadPod reports them).

It also says whether a pod runs (Job ``status.ready`` is the count of Ready pods, but
absent before Kubernetes 1.24), why a pod waits when nothing is wrong (``ContainerCreating``)
and how the latest pod failed (``OOMKilled`` with the memory limit, or the last line of its
termination message), or the result summary a Job's pod that succeeded left in its
termination message (:mod:`.termination`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stevie_operator.framework import termination

__all__ = [
    "EVENT_HINTS",
    "WAITING_HINTS",
    "PodReport",
    "event_subjects",
    "pods_of",
    "report",
]

Obj = Mapping[str, Any]

_IMAGE = "check spec.image and that the cluster may pull it (imagePullSecrets)"
WAITING_HINTS: Mapping[str, str] = {
    "ErrImagePull": _IMAGE,
    "ImagePullBackOff": _IMAGE,
    "InvalidImageName": "spec.image is not a valid image reference",
    "ErrImageNeverPull": "imagePullPolicy is Never and the image is not on the node",
    "ImageInspectError": _IMAGE,
    "RegistryUnavailable": "the image registry does not answer",
    "CreateContainerConfigError": "create the Secret or ConfigMap (and key) the pod reads",
    "CreateContainerError": "the container runtime refused the container",
    "RunContainerError": "the container runtime could not start the container",
    "CrashLoopBackOff": "the container exits again and again: see `kubectl logs`",
}
"""Container ``state.waiting`` reasons that are a problem, and what to do about each (a pod
waiting for ``ContainerCreating`` or ``PodInitializing`` is only starting)."""

EVENT_HINTS: Mapping[str, str] = {
    "FailedCreate": "the API server refuses the pod: raise the namespace's ResourceQuota or "
    "lower spec.resources, or allow the pod's security settings",
    "FailedMount": "check the volumes: the PVC exists and is bound, the Secret exists",
    "FailedAttachVolume": "the volume cannot attach: a ReadWriteOnce volume attaches to one "
    "node only; use a ReadWriteMany volume for pods on several nodes",
}
"""Warning Event reasons that are a problem, and what to do about each."""

_UNSCHEDULABLE = (
    "no node fits the pod: lower spec.resources, or fix spec.nodeSelector/tolerations, or add nodes"
)
_KEEPS_TRYING = "; Kubernetes keeps trying, so it starts once that is fixed"


@dataclass(frozen=True)
class PodReport:
    """What a child's pods say.

    ``pods``: its pods still running or to run; ``running``: one runs (Job) or is Ready
    (Deployment); ``waiting``: why the newest waits when nothing is wrong
    (``ContainerCreating``); ``problem``: (reason, message) when a pod cannot start or be
    created until someone acts; ``failure``: (reason, message) of the latest failed pod;
    ``summary``: the trainer's result summary from a succeeded Job pod's termination
    message (:func:`.termination.summary`), for a status the store cannot give."""

    pods: int = 0
    running: bool = False
    waiting: str | None = None
    problem: tuple[str, str] | None = None
    failure: tuple[str, str] | None = None
    summary: Mapping[str, Any] | None = None


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _status(obj: Obj) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _condition(obj: Obj, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in _list(_status(obj).get("conditions")) if c.get("type") == type_), None)


def _finished_job(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in _list(_status(job).get("conditions"))
    )


def _owned_by_job(pod: Obj, job: Obj) -> bool:
    """The Job controller's ownerReference (by uid, else by name), or its job-name label."""
    meta, job_meta = _meta(pod), _meta(job)
    for ref in _list(meta.get("ownerReferences")):
        if ref.get("kind") == "Job":
            if ref.get("uid") and job_meta.get("uid"):
                return bool(ref.get("uid") == job_meta.get("uid"))
            return bool(ref.get("name") == job_meta.get("name"))
    labels = meta.get("labels") or {}
    name = job_meta.get("name")
    return name is not None and name in (
        labels.get("batch.kubernetes.io/job-name"),
        labels.get("job-name"),
    )


def _selected(pod: Obj, deployment: Obj) -> bool:
    """The Deployment's selector (matchLabels) picks the pod, and no Job owns it."""
    spec = deployment.get("spec") if isinstance(deployment.get("spec"), Mapping) else {}
    selector = ((spec or {}).get("selector") or {}).get("matchLabels") or {}
    labels = _meta(pod).get("labels") or {}
    jobs = [r for r in _list(_meta(pod).get("ownerReferences")) if r.get("kind") == "Job"]
    return bool(selector) and not jobs and selector.items() <= labels.items()


def pods_of(child: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The pods of one Job or Deployment among an owner's pods, newest first."""
    mine = _owned_by_job if child.get("kind", "Job") == "Job" else _selected
    found = [p for p in pods if mine(p, child)]
    return sorted(
        found,
        key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), str(_meta(p).get("name"))),
        reverse=True,
    )


def _live(pod: Obj) -> bool:
    return _status(pod).get("phase") not in ("Succeeded", "Failed") and not _meta(pod).get(
        "deletionTimestamp"
    )


def _statuses(pod: Obj) -> list[Mapping[str, Any]]:
    status = _status(pod)
    return _list(status.get("initContainerStatuses")) + _list(status.get("containerStatuses"))


def _waiting_problem(pod: Obj) -> tuple[str, str] | None:
    name = _meta(pod).get("name")
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason"))
        if reason in WAITING_HINTS:
            text = waiting.get("message") or f"container {cs.get('name')} is {reason}"
            return reason, f"pod {name}: {text} ({WAITING_HINTS[reason]}{_KEEPS_TRYING})"
    return None


def _unschedulable(pod: Obj) -> tuple[str, str] | None:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "False":
        return None
    if scheduled.get("reason") != "Unschedulable":
        return None  # SchedulingGated and the like: someone holds it on purpose
    text = scheduled.get("message") or "no node fits the pod"
    name = _meta(pod).get("name")
    return "Unschedulable", f"pod {name}: {text} ({_UNSCHEDULABLE}{_KEEPS_TRYING})"


def _status_problem(pod: Obj) -> tuple[str, str] | None:
    return _waiting_problem(pod) or _unschedulable(pod)


def _waiting(pod: Obj) -> str:
    """Why a pod with no problem is not running yet."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "True":
        reason = (scheduled or {}).get("reason")
        return f"not scheduled yet ({reason})" if reason else "not scheduled yet"
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"])
    return str(_status(pod).get("phase") or "Pending")


def event_subjects(child: Obj, pods: Iterable[Obj]) -> list[str]:
    """The uids whose Events may say what status does not: an unfinished Job with no pod
    (FailedCreate), the newest pod Pending with no reason in its status (FailedMount)."""
    if child.get("kind", "Job") == "Job" and _finished_job(child):
        return []
    mine = pods_of(child, pods)
    uid = _meta(child).get("uid")
    if not mine:
        # A Deployment's ReplicaSet reports FailedCreate in the Deployment's ReplicaFailure.
        return [str(uid)] if uid and child.get("kind", "Job") == "Job" else []
    live = [p for p in mine if _live(p)]
    newest = live[0] if live else None
    if newest is None or _status(newest).get("phase") != "Pending" or _status_problem(newest):
        return []
    pod_uid = _meta(newest).get("uid")
    return [str(pod_uid)] if pod_uid else []


def _when(event: Obj) -> str:
    series = event.get("series") if isinstance(event.get("series"), Mapping) else {}
    for value in (
        (series or {}).get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        _meta(event).get("creationTimestamp"),
    ):
        if isinstance(value, str) and value:
            return value
    return ""


def _event_problem(uid: Any, what: str, events: Sequence[Obj]) -> tuple[str, str] | None:
    """The latest Warning Event of a known reason on the object with ``uid``."""
    if not uid:
        return None
    found = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("uid") == uid
        and e.get("type") == "Warning"
        and e.get("reason") in EVENT_HINTS
    ]
    if not found:
        return None
    latest = max(found, key=_when)
    reason = str(latest["reason"])
    text = latest.get("message") or reason
    return reason, f"{what}: {text} ({EVENT_HINTS[reason]}{_KEEPS_TRYING})"


def _memory_limit(pod: Obj, container: Any) -> str | None:
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    for c in _list((spec or {}).get("containers")):
        if c.get("name") == container:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit else None
    return None


def _last_line(text: Any) -> str | None:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _pod_failure(pod: Obj) -> tuple[str, str] | None:
    """How one pod's containers ended, when one failed: OOMKilled first."""
    name, ended = _meta(pod).get("name"), []
    for cs in _list(_status(pod).get("containerStatuses")):
        for state in (cs.get("state"), cs.get("lastState")):
            terminated = (state or {}).get("terminated") if isinstance(state, Mapping) else None
            if isinstance(terminated, Mapping) and terminated.get("exitCode", 0) != 0:
                ended.append((cs.get("name"), terminated))
    for container, terminated in ended:
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, container)
            who = "the trainer" if container == "trainer" else f"container {container}"
            bound = f"limit {limit}" if limit else "no memory limit: the node ran out"
            code = terminated.get("exitCode", 137)
            return "OOMKilled", f"pod {name}: {who} ran out of memory ({bound}), exit {code}"
    status = _status(pod)
    if status.get("phase") == "Failed" and status.get("reason"):  # Evicted, OutOfmemory...
        return str(status["reason"]), f"pod {name}: {status.get('message') or status['reason']}"
    for container, terminated in ended[:1]:
        line = _last_line(terminated.get("message"))
        code = terminated.get("exitCode")
        text = f"container {container} exited with code {code}" + (f": {line}" if line else "")
        return str(terminated.get("reason") or "Error"), f"pod {name}: {text}"
    return None


def _deployment_problem(deployment: Obj) -> tuple[str, str] | None:
    failure = _condition(deployment, "ReplicaFailure")
    if failure is None or failure.get("status") != "True":
        return None
    reason = str(failure.get("reason") or "FailedCreate")
    hint = EVENT_HINTS.get(reason, "see `kubectl describe` of its ReplicaSet")
    return reason, f"{failure.get('message') or reason} ({hint}{_KEEPS_TRYING})"


def report(child: Obj, pods: Iterable[Obj], events: Sequence[Obj] = ()) -> PodReport:
    """What the pods of one Job or Deployment say (see the module docstring); ``pods`` are
    the owner's, ``events`` those read for :func:`event_subjects` (others are ignored)."""
    mine = pods_of(child, pods)
    live = [p for p in mine if _live(p)]
    is_job = child.get("kind", "Job") == "Job"
    if is_job:
        running = any(_status(p).get("phase") in ("Running", "Succeeded") for p in live)
    else:
        running = any((_condition(p, "Ready") or {}).get("status") == "True" for p in live)
    problem = next((found for p in live if (found := _status_problem(p))), None)
    if problem is None and live and _status(live[0]).get("phase") == "Pending":
        pod = live[0]
        problem = _event_problem(_meta(pod).get("uid"), f"pod {_meta(pod).get('name')}", events)
    if problem is None and not mine and is_job and not _finished_job(child):
        problem = _event_problem(_meta(child).get("uid"), "cannot create its pod", events)
    if problem is None and not is_job:
        problem = _deployment_problem(child)
    waiting = None if running or not live else _waiting(live[0])
    failure = next((found for p in mine if not _live(p) and (found := _pod_failure(p))), None)
    if failure is None:  # a container that was OOMKilled and restarted (restartPolicy Always)
        failure = next((found for p in live if (found := _pod_failure(p))), None)
    summary = termination.summary(mine) if is_job else None
    return PodReport(len(live), running, waiting, problem, failure, summary)
