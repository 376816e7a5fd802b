"""Reading a resource as the API server returns it: the validated model (or why not), and
its stored status, tolerantly.

:func:`validate` never raises: an invalid spec is a status (Failed/InvalidSpec), not a
crashed reconcile. :func:`load_status` never raises either: a status written by an older
operator (a renamed or dropped field) keeps every field that still validates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from stevie_api.common import StatusBase
from stevie_api.loader import problems as spec_problems

__all__ = [
    "Subject",
    "load_status",
    "namespace_of",
    "read_subject",
    "spec_document",
    "validate",
]

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=StatusBase)
_FIELDS = ("apiVersion", "kind", "metadata", "spec")


def validate(body: Mapping[str, Any], model: type[M]) -> M | list[str]:
    """The validated resource of kind ``model``, or one line per problem (``spec.x.y: ...``).
    (:func:`stevie_api.loader.parse_resource` is the raising twin, for files.)"""
    doc = {key: body[key] for key in _FIELDS if key in body}
    try:
        payload = json.dumps(doc, default=str)
        return model.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
    except ValidationError as err:
        return spec_problems(err, model) or [str(err).splitlines()[0]]
    except ValueError as err:
        return [str(err)]


def spec_document(resource: BaseModel) -> dict[str, Any]:
    """What a kind's pods read as their spec file: the resource without status, with only
    name and namespace as metadata (uid, resourceVersion, finalizers and annotations change
    without the resource changing)."""
    doc = resource.model_dump(by_alias=True, exclude_none=True, mode="json")
    meta = doc.get("metadata") or {}
    doc["metadata"] = {k: v for k, v in meta.items() if k in ("name", "namespace") and v}
    doc.pop("status", None)
    return doc


def namespace_of(body: Mapping[str, Any]) -> str:
    """The resource's namespace (``default`` when unset)."""
    return str((body.get("metadata") or {}).get("namespace") or "default")


def load_status(raw: Any, model: type[S]) -> S:
    """The stored status as ``model``. Fields that no longer validate (renamed, retyped,
    unknown) are dropped one top-level key at a time; the rest is kept."""
    doc = dict(raw) if isinstance(raw, Mapping) else {}
    for _ in range(len(doc) + 1):
        try:
            return model.model_validate(doc)
        except ValidationError as err:
            bad = {e["loc"][0] for e in err.errors() if e["loc"]}
            if not bad & doc.keys():
                break
            doc = {k: v for k, v in doc.items() if k not in bad}
    return model()


@dataclass
class Subject(Generic[M, S]):
    """What every reconciler reads first: the resource (validated, or its problems), where
    it lives, its generation and its stored status (``status`` to update, ``before`` as it
    was, ``stored`` as the raw document the merge patch is computed against)."""

    body: Mapping[str, Any]
    resource: M | None
    problems: list[str]
    namespace: str
    name: str
    generation: int | None
    stored: Mapping[str, Any]
    status: S
    before: S


def read_subject(body: Mapping[str, Any], model: type[M], status_model: type[S]) -> Subject[M, S]:
    """The :class:`Subject` of ``body``."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    generation = meta.get("generation")
    raw = body.get("status")
    stored = raw if isinstance(raw, Mapping) else {}
    status = load_status(stored, status_model)
    parsed = validate(body, model)
    return Subject(
        body=body,
        resource=None if isinstance(parsed, list) else parsed,
        problems=parsed if isinstance(parsed, list) else [],
        namespace=namespace_of(body),
        name=str(meta.get("name") or ""),
        generation=generation if isinstance(generation, int) else None,
        stored=stored,
        status=status,
        before=status.model_copy(deep=True),
    )
