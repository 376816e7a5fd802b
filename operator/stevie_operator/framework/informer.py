"""The children of each resource from kopf's in-memory indexes, not a LIST per reconcile.

The operator watches its children anyway (their events reconcile the owner), so kopf can
keep them indexed by owner as they stream (:func:`index_key`, one ``@kopf.index`` per child
type and one for pods; see :mod:`.registration`), as an informer's cache does for a
controller-runtime controller. kopf starts no resource handler before every indexed
resource has had its initial listing, so a freshly started operator never sees "no Job"
for a Job that exists. A reconcile then costs no API call to learn its children.

What a watch has not delivered yet is the one gap: a Job this operator has just created
(a timer tick or a status change can come before the Job's ADDED event). client-go's
controllers keep "expectations" for that; here the create response is kept
(:meth:`ChildIndex.expect`) and shown with the index's objects until the index has an
object of that name, or :data:`EXPECTATION_SECONDS` have passed (then the watch has
missed nothing: the object is gone). A reconcile in that gap would at worst create the Job
again and get a 409 for its own child, which the controller treats as created.

``stevie run`` has no kopf: its controller lists its local cluster instead (a dict).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stevie_api.naming import label_value
from stevie_operator.framework.pods import KIND_LABEL, NAME_LABEL

__all__ = ["EXPECTATION_SECONDS", "POD_PLURAL", "ChildIndex", "IndexKey", "index_key", "owner_key"]

EXPECTATION_SECONDS = 60.0
"""How long a created child counts as present before the index has it."""
POD_PLURAL = "pods"
IndexKey = tuple[str, str, str]
"""(namespace, owner kind, owner name label): the children of one resource."""
Obj = Mapping[str, Any]


def owner_key(namespace: str, kind: str, name: str) -> IndexKey:
    """The index key of the children of resource ``kind`` ``namespace/name``."""
    return (namespace, kind, label_value(name))


def index_key(namespace: str | None, labels: Mapping[str, str]) -> IndexKey | None:
    """Whose child (or child's pod) an object is, by the labels every child carries
    (:func:`~.pods.owner_labels`); None for an object of no Stevie resource."""
    kind, owner = labels.get(KIND_LABEL), labels.get(NAME_LABEL)
    if not kind or not owner:
        return None
    return (namespace or "default", kind, owner)


@dataclass
class _Expected:
    key: IndexKey
    obj: Obj
    deadline: float


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class ChildIndex:
    """kopf's indexes of the child types (and pods), by plural, plus the created children the
    watches have not delivered yet. ``stores[plural]`` maps an :data:`IndexKey` to the
    objects indexed under it (a ``kopf.Index``: missing keys are absent, not empty)."""

    def __init__(
        self,
        stores: Mapping[str, Mapping[IndexKey, Iterable[Obj]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._expected: dict[tuple[str, str, str], _Expected] = {}  # plural, namespace, name

    def covers(self, plural: str) -> bool:
        """Whether this plural is indexed (else the controller lists it)."""
        return plural in self._stores

    def expect(self, plural: str, namespace: str, obj: Obj) -> None:
        """``obj`` was just created: show it until the index has it."""
        key = index_key(namespace, (obj.get("metadata") or {}).get("labels") or {})
        if key is not None:
            deadline = self._clock() + EXPECTATION_SECONDS
            self._expected[(plural, namespace, _name(obj))] = _Expected(key, obj, deadline)

    def children(self, plural: str, key: IndexKey) -> dict[str, dict[str, Any]]:
        """The objects of ``plural`` indexed under ``key``, by name (copies: a reconcile
        may attach what it learns to them), with the expected ones not indexed yet."""
        store = self._stores[plural]
        found = {_name(obj): dict(obj) for obj in store.get(key, ())}
        now = self._clock()
        for where, expected in list(self._expected.items()):
            if where[0] != plural or expected.key != key:
                continue
            if where[2] in found or now >= expected.deadline:
                del self._expected[where]
            else:
                found[where[2]] = dict(expected.obj)
        return found

    def forget(self, key: IndexKey) -> None:
        """Drop the expectations of a resource that is gone."""
        for where in [w for w, e in self._expected.items() if e.key == key]:
            del self._expected[where]
