"""What counts as a spec change, and which changes a running resource can take.

Every place that compares a stored spec with a new one (the trainer's ``claim`` of a run
folder, a PBT population's stored spec, an HPO study's fingerprint, an Ensemble's version)
compares :func:`normalized` forms: the spec validated through the *current* model, then
dumped without the fields that hold their default. So a newer model that adds a field with
a default reads an old stored spec as the same spec (the old one simply lacks the key), and
writing a default explicitly (the API server's CRD defaulting does) is no change either.

Once a resource's children exist, only some fields may change (Katib's Experiment webhook
allows only parallelTrialCount, maxTrialCount and maxFailedTrialCount; a Job's pod template
is immutable): :data:`MUTABLE` lists them per kind, :func:`refused` finds the others that
changed, and :func:`effective` is the spec to keep running (the applied one, with the
mutable fields taken from the edit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = [
    "IMMUTABLE_FIELD_CHANGED",
    "MUTABLE",
    "changed_paths",
    "diff",
    "effective",
    "immutable_message",
    "normalized",
    "refused",
]

M = TypeVar("M", bound=BaseModel)

IMMUTABLE_FIELD_CHANGED = "ImmutableFieldChanged"
"""The Degraded reason of an edit a running resource refused."""

MUTABLE: dict[str, tuple[str, ...]] = {
    # A trainer Job's pod template (which carries the spec) cannot change; its deadline can.
    "TrainingRun": ("activeDeadlineSeconds",),
    # Katib's rule: budget and concurrency only. The search itself (space, objectives,
    # sampler, the template every trial trains) stays what the study's trials were run with.
    "HPOStudy": ("maxTrials", "parallelism", "maxFailedTrials", "significance"),
    "PBTPopulation": ("parallelism",),
    # An Ensemble's members, method and data make a new version (a new backtest): any edit.
    "Ensemble": ("",),
}
"""Per kind, the spec paths (camelCase, dotted, below ``spec``) an edit may change while
the resource runs; a path covers everything below it ("" covers the whole spec)."""


def normalized(spec: BaseModel | Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """``spec`` validated through ``model`` (so defaults are filled) and dumped by alias,
    JSON-compatible, without the fields equal to their default. Raises pydantic's
    ValidationError when a stored ``spec`` no longer validates (a removed or retyped field):
    that is a real change, the caller says so."""
    value = spec if isinstance(spec, model) else model.model_validate(_plain(spec))
    return value.model_dump(by_alias=True, mode="json", exclude_defaults=True)


def _plain(spec: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(spec, BaseModel):  # another model class: its Kubernetes form
        return spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dict(spec)


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """The dotted paths below ``path`` where two JSON documents differ (lists count as one
    value; a key missing on one side differs from any value on the other)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            found += diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if old == new else [path]


def changed_paths(
    old: BaseModel | Mapping[str, Any],
    new: BaseModel | Mapping[str, Any],
    model: type[BaseModel],
    prefix: str = "spec",
) -> list[str]:
    """The dotted camelCase paths (``spec.ppo.learningRate``) where the normalised specs
    differ; lists count as one value. A stored ``old`` that no longer validates differs
    as a whole (``[prefix]``)."""
    from pydantic import ValidationError

    try:
        before = normalized(old, model)
    except ValidationError:
        return [prefix]
    return diff(before, normalized(new, model), prefix)


def _covered(path: str, mutable: tuple[str, ...], prefix: str) -> bool:
    for allowed in mutable:
        root = f"{prefix}.{allowed}" if allowed else prefix
        if path == root or path.startswith(root + "."):
            return True
    return False


def refused(
    kind: str,
    applied: BaseModel | Mapping[str, Any],
    new: BaseModel | Mapping[str, Any],
    model: type[BaseModel],
) -> list[str]:
    """The paths of ``kind``'s immutable fields that differ between the ``applied`` spec
    (what the children run) and the ``new`` one; empty when the edit may be applied."""
    mutable = MUTABLE[kind]
    return [p for p in changed_paths(applied, new, model) if not _covered(p, mutable, "spec")]


def effective(kind: str, applied: Mapping[str, Any], new: M) -> M:
    """The spec to keep running after a refused edit: ``applied`` (validated through the
    current model), with ``kind``'s mutable fields taken from ``new``."""
    doc = type(new).model_validate(_plain(applied)).model_dump(by_alias=True, mode="json")
    latest = new.model_dump(by_alias=True, mode="json")
    for path in MUTABLE[kind]:
        if not path:
            return new
        *parents, leaf = path.split(".")
        src, dst = latest, doc
        for key in parents:
            src, dst = src.get(key) or {}, dst.setdefault(key, {})
        if leaf in src:
            dst[leaf] = src[leaf]
    return type(new).model_validate(doc)


def immutable_message(paths: list[str], what: str = "run") -> str:
    """The Degraded message of a refused edit, naming the fields."""
    return (
        f"{', '.join(paths)} cannot change while the {what} exists; the {what} goes on with "
        "the spec it started with (revert the edit, or delete and re-create it to start over)"
    )
