"""Ensemble members: where each one's model is (:func:`resolve`), and the loaded agent that
votes (:class:`Member`).

A member is referenced by what its source's status says (the operator passes that on):

- ``TrainingRun``: the run's artifacts folder (model.zip = best by validation);
- ``PBTPopulation``: its ``pbt_summary.json``; the model is the best member's, under best/;
- ``HPOStudy``: its ``optimization_results.json``; the model is the best trial's, from the
  seed with the best validation Sharpe;
- ``uri``: a ``model.zip`` trained by Stevie, with its spec.json and result.json beside it.

Every source resolves to a *model folder*: model.zip, spec.json (the TrainingRun spec the
model was trained under: its observation, actions and costs) and result.json (its
validation metrics, which weigh its vote). Anything missing or unreadable is a
:class:`MemberError` that names the member.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.common.storage import StorageError

__all__ = ["SOURCES", "MemberError", "MemberRef", "ResolvedMember", "resolve"]

Source = Literal["TrainingRun", "PBTPopulation", "HPOStudy", "uri"]
SOURCES: tuple[Source, ...] = ("TrainingRun", "PBTPopulation", "HPOStudy", "uri")
F64 = npt.NDArray[np.float64]


class MemberError(ValueError):
    """A member whose model cannot be used (missing, corrupt, incompatible): names it."""

    def __init__(self, member: str, problem: str) -> None:
        super().__init__(f"member {member!r}: {problem}")
        self.member = member
        self.problem = problem


@dataclass(frozen=True)
class MemberRef:
    """A member as the Ensemble names it: its source and the URI that source published."""

    name: str
    source: Source
    uri: str
    weight: float | None = None  # fixed voting weight (overrides the validation metric)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MemberRef:
        source = doc.get("source")
        if source not in SOURCES:
            raise ValueError(f"member source must be one of {', '.join(SOURCES)} (got {source!r})")
        weight = doc.get("weight")
        return cls(
            name=str(doc["name"]),
            source=source,
            uri=str(doc["uri"]),
            weight=None if weight is None else float(weight),
        )


@dataclass(frozen=True)
class ResolvedMember:
    """A member's model folder and what it was trained as."""

    name: str
    source: Source
    reference: str  # the URI the source published
    folder: str  # model.zip, spec.json, result.json
    spec: TrainingRunSpec
    validation: dict[str, Any] = field(default_factory=dict)
    weight: float | None = None

    @property
    def model_uri(self) -> str:
        return storage.join(self.folder, "model.zip")

    def metric(self, name: str) -> float | None:
        """A validation metric (``validation.sharpe`` or ``sharpe``), None when undefined."""
        key = name.removeprefix("validation.")
        value = self.validation.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["spec"] = self.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        doc["model_uri"] = self.model_uri
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ResolvedMember:
        return cls(
            name=doc["name"],
            source=doc["source"],
            reference=doc["reference"],
            folder=doc["folder"],
            spec=TrainingRunSpec.model_validate(doc["spec"]),
            validation=dict(doc.get("validation") or {}),
            weight=doc.get("weight"),
        )


def _read_json(ref: MemberRef, uri: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(storage.read_text(uri))
    except (StorageError, FileNotFoundError) as err:
        raise MemberError(ref.name, f"{what} is missing ({uri}): {err}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MemberError(ref.name, f"{what} is not valid JSON ({uri}): {err}") from err
    if not isinstance(doc, dict):
        raise MemberError(ref.name, f"{what} is not a JSON object ({uri})")
    return doc


def _parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def _hpo_folder(ref: MemberRef) -> str:
    """The best trial's seed folder with the best validation Sharpe."""
    results = _read_json(ref, ref.uri, "the study's optimization_results.json")
    best = results.get("best_trial")
    if best is None:
        raise MemberError(ref.name, "the study has no completed trial")
    trial = next((t for t in results.get("trials", []) if t.get("number") == best), None)
    if trial is None or not trial.get("name"):
        raise MemberError(ref.name, f"trial {best} is not in {ref.uri}")
    folder = storage.join(_parent(ref.uri), str(trial["name"]))
    seeds = int(results.get("budget", {}).get("seeds_per_trial", 1))
    scored: list[tuple[float, str]] = []
    for k in range(seeds):
        seed = storage.join(folder, f"seed-{k}")
        if not storage.exists(storage.join(seed, "result.json")):
            continue
        doc = _read_json(ref, storage.join(seed, "result.json"), f"seed {k}'s result.json")
        sharpe = (doc.get("validation") or {}).get("sharpe")
        good = isinstance(sharpe, int | float) and math.isfinite(sharpe)
        scored.append((float(sharpe) if good and sharpe is not None else -math.inf, seed))
    if not scored:
        raise MemberError(ref.name, f"trial {best} has no finished seed under {folder}")
    return max(scored)[1]


def model_folder(ref: MemberRef) -> str:
    """The folder holding the member's model.zip, spec.json and result.json."""
    if ref.source == "TrainingRun":
        return ref.uri.rstrip("/")
    if ref.source == "PBTPopulation":
        return storage.join(_parent(ref.uri), "best")
    if ref.source == "HPOStudy":
        return _hpo_folder(ref)
    return _parent(ref.uri)


def resolve(ref: MemberRef) -> ResolvedMember:
    """Find the member's model folder and read its spec and validation metrics."""
    folder = model_folder(ref)
    if not storage.exists(storage.join(folder, "model.zip")):
        raise MemberError(ref.name, f"no model.zip under {folder}")
    spec_doc = _read_json(ref, storage.join(folder, "spec.json"), "spec.json")
    try:
        spec = TrainingRunSpec.model_validate(spec_doc)
    except ValueError as err:
        raise MemberError(ref.name, f"spec.json is not a TrainingRun spec: {err}") from err
    if spec.env.action_scheme != "target":
        raise MemberError(
            ref.name,
            "trained with actionScheme trade: an ensemble votes on target positions, so its "
            "members must use the target scheme",
        )
    result = _read_json(ref, storage.join(folder, "result.json"), "result.json")
    return ResolvedMember(
        name=ref.name,
        source=ref.source,
        reference=ref.uri,
        folder=folder,
        spec=spec,
        validation=dict(result.get("validation") or {}),
        weight=ref.weight,
    )
