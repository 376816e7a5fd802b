"""Where a resource's artifacts live, and reading what pods wrote there, tolerantly.

Artifacts are keyed by the object, not by its name, as KubeRay keys a RayJob's Ray job and
Katib a trial by the object: :func:`artifact_root` is
``<root>/<namespace>/<plural>/<name>/<uid>``. Delete a resource and create it again under
the same name and it starts fresh in a new folder, instead of finding its predecessor's
result ("already finished") or its stored spec (a conflict); the predecessor's artifacts
stay where they were, one folder up lists every incarnation.

``stevie run`` has no API server to give uids: its objects get :func:`local_uid`, the same
for the same kind, namespace and name, so running a file again resumes in the same folder.
:func:`object_uid` picks that uid for an object that has none in local mode (``stevie
serve`` reads a file, not the runner's in-memory API).

Reading never crashes on a missing, half-written or foreign file (the trainer's own reader,
RunStore, is strict).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from stevie_api.common import ObjectMeta
from stevie_api.kinds import KINDS
from stevie_trainer.common import storage

__all__ = [
    "LOCAL_UIDS",
    "artifact_root",
    "local_uid",
    "object_uid",
    "read_json",
    "resource_root",
]

LOCAL_UIDS = uuid.uuid5(uuid.NAMESPACE_DNS, "local.stevie.dev")
"""The uuid5 namespace of :func:`local_uid`."""


def local_uid(kind: str, namespace: str, name: str) -> str:
    """The uid ``stevie run`` gives a resource: deterministic, so a rerun resumes."""
    return str(uuid.uuid5(LOCAL_UIDS, f"{kind}/{namespace}/{name}"))


def object_uid(kind: str, namespace: str, name: str, uid: str | None, local: bool) -> str | None:
    """The uid that keys an object's artifacts: its own, else (``local``: no API server)
    :func:`local_uid`; None for an object no API server has seen (a spec under test)."""
    if uid:
        return uid
    return local_uid(kind, namespace, name) if local else None


def artifact_root(root: str, namespace: str, plural: str, name: str, uid: str | None) -> str:
    """The folder of one object's artifacts: ``<root>/<namespace>/<plural>/<name>/<uid>``
    (without ``/<uid>`` when there is none, see :func:`object_uid`)."""
    folder = storage.join(root, namespace, plural, name)
    return storage.join(folder, uid) if uid else folder


def resource_root(root: str, namespace: str, kind: str, meta: ObjectMeta, local: bool) -> str:
    """:func:`artifact_root` of a validated resource of ``kind`` (every kind's folder)."""
    uid = object_uid(kind, namespace, meta.name, meta.uid, local)
    return artifact_root(root, namespace, KINDS[kind].plural, meta.name, uid)


def read_json(uri: str) -> dict[str, Any] | None:
    """A JSON object from storage; None where absent, unreadable or not an object."""
    try:
        data = json.loads(storage.read_text(uri))
    except (storage.StorageError, ValueError):
        return None
    return data if isinstance(data, dict) else None
