"""Stevie's API: pydantic models of the four kinds, the one source of truth for CRDs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

GROUP: str = "stevie.dev"
VERSION: str = "v1alpha1"
API_VERSION: str = f"{GROUP}/{VERSION}"

# The names below are imported on first use (PEP 562): a trainer Job that needs only the
# TrainingRun models does not build every kind's pydantic models (and the CRD generator)
# when it imports one module of this package.
if TYPE_CHECKING:
    from stevie_api.algorithms import DQNHyperparameters, PolicySpec, PPOHyperparameters
    from stevie_api.common import Condition, MetricSummary, ObjectMeta, ParamSpec, StatusBase
    from stevie_api.crd import generate_crds, write_crds
    from stevie_api.ensemble import Ensemble, EnsembleMember, EnsembleSpec, EnsembleStatus
    from stevie_api.hpo import HPOStudy, HPOStudySpec, HPOStudyStatus
    from stevie_api.kinds import KINDS, KindInfo, Resource
    from stevie_api.loader import SpecError, load_resources, parse_resource
    from stevie_api.market import DataSpec, EnvSpec, ExpertSpec, SplitSpec
    from stevie_api.pbt import PBTPopulation, PBTPopulationSpec, PBTPopulationStatus
    from stevie_api.training import TrainingRun, TrainingRunSpec, TrainingRunStatus

_LAZY: dict[str, str] = {
    "Condition": "stevie_api.common",
    "DQNHyperparameters": "stevie_api.algorithms",
    "DataSpec": "stevie_api.market",
    "Ensemble": "stevie_api.ensemble",
    "EnsembleMember": "stevie_api.ensemble",
    "EnsembleSpec": "stevie_api.ensemble",
    "EnsembleStatus": "stevie_api.ensemble",
    "EnvSpec": "stevie_api.market",
    "ExpertSpec": "stevie_api.market",
    "HPOStudy": "stevie_api.hpo",
    "HPOStudySpec": "stevie_api.hpo",
    "HPOStudyStatus": "stevie_api.hpo",
    "KINDS": "stevie_api.kinds",
    "KindInfo": "stevie_api.kinds",
    "MetricSummary": "stevie_api.common",
    "ObjectMeta": "stevie_api.common",
    "PBTPopulation": "stevie_api.pbt",
    "PBTPopulationSpec": "stevie_api.pbt",
    "PBTPopulationStatus": "stevie_api.pbt",
    "PPOHyperparameters": "stevie_api.algorithms",
    "ParamSpec": "stevie_api.common",
    "PolicySpec": "stevie_api.algorithms",
    "Resource": "stevie_api.kinds",
    "SpecError": "stevie_api.loader",
    "SplitSpec": "stevie_api.market",
    "StatusBase": "stevie_api.common",
    "TrainingRun": "stevie_api.training",
    "TrainingRunSpec": "stevie_api.training",
    "TrainingRunStatus": "stevie_api.training",
    "generate_crds": "stevie_api.crd",
    "load_resources": "stevie_api.loader",
    "parse_resource": "stevie_api.loader",
    "write_crds": "stevie_api.crd",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "DQNHyperparameters",
    "DataSpec",
    "Ensemble",
    "EnsembleMember",
    "EnsembleSpec",
    "EnsembleStatus",
    "EnvSpec",
    "ExpertSpec",
    "HPOStudy",
    "HPOStudySpec",
    "HPOStudyStatus",
    "KindInfo",
    "MetricSummary",
    "ObjectMeta",
    "PBTPopulation",
    "PBTPopulationSpec",
    "PBTPopulationStatus",
    "PPOHyperparameters",
    "ParamSpec",
    "PolicySpec",
    "Resource",
    "SpecError",
    "SplitSpec",
    "StatusBase",
    "TrainingRun",
    "TrainingRunSpec",
    "TrainingRunStatus",
    "generate_crds",
    "load_resources",
    "parse_resource",
    "write_crds",
]
