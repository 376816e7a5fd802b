"""A study's fingerprint: its search space and objectives, normalised.

Stored in the Optuna study (user attr ``stevie_fingerprint``) when it is created, and
compared each time it is opened: a study of that name with another search is refused. The
comparison is on the normalised form (:func:`stevie_api.changes.normalized`), so a
fingerprint written with defaults spelled out, or before ParamSpec or Objective gained a
defaulted field, is the same search.
"""

from __future__ import annotations

import json
from typing import Any

from stevie_api.changes import diff, normalized
from stevie_api.common import ParamSpec
from stevie_api.hpo import HPOStudySpec, Objective

__all__ = ["fingerprint", "search_changes"]


def _search(space: Any, objectives: Any) -> dict[str, Any]:
    return {
        "searchSpace": {str(k): normalized(v, ParamSpec) for k, v in dict(space).items()},
        "objectives": [normalized(o, Objective) for o in objectives],
    }


def fingerprint(spec: HPOStudySpec) -> str:
    """The fingerprint of ``spec``'s search (JSON text)."""
    return json.dumps(_search(spec.search_space, spec.objectives), sort_keys=True)


def search_changes(stored: str, spec: HPOStudySpec) -> list[str]:
    """The paths (``spec.searchSpace.gamma.low``, ``spec.objectives``) where a stored
    fingerprint differs from ``spec``; both, when it cannot be read."""
    try:
        doc = json.loads(stored)
        theirs = _search(doc.get("searchSpace") or {}, doc.get("objectives") or [])
    except (ValueError, TypeError, AttributeError):  # pydantic's ValidationError is one
        return ["spec.searchSpace", "spec.objectives"]
    return diff(theirs, json.loads(fingerprint(spec)), "spec")
