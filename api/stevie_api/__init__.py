"""Stevie's API: pydantic models of the four kinds, the one source of truth for CRDs."""

from __future__ import annotations

GROUP: str = "stevie.dev"
VERSION: str = "v1alpha1"
API_VERSION: str = f"{GROUP}/{VERSION}"

# The constants above come first: the modules below import them.
from stevie_api.algorithms import (  # noqa: E402
    DQNHyperparameters,
    PolicySpec,
    PPOHyperparameters,
)
from stevie_api.common import (  # noqa: E402
    Condition,
    MetricSummary,
    ObjectMeta,
    ParamSpec,
    StatusBase,
)
from stevie_api.crd import generate_crds, write_crds  # noqa: E402
from stevie_api.ensemble import Ensemble, EnsembleMember, EnsembleSpec, EnsembleStatus  # noqa: E402
from stevie_api.hpo import HPOStudy, HPOStudySpec, HPOStudyStatus  # noqa: E402
from stevie_api.kinds import KINDS, KindInfo, Resource  # noqa: E402
from stevie_api.loader import SpecError, load_resources, parse_resource  # noqa: E402
from stevie_api.market import DataSpec, EnvSpec, ExpertSpec, SplitSpec  # noqa: E402
from stevie_api.pbt import PBTPopulation, PBTPopulationSpec, PBTPopulationStatus  # noqa: E402
from stevie_api.training import TrainingRun, TrainingRunSpec, TrainingRunStatus  # noqa: E402

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
