"""The kinds this operator runs, in one place: ``app`` registers each with kopf, and
``stevie run`` drives each with the local launcher. Adding a kind is one line here (after
its models in :mod:`stevie_api` and its folder under :mod:`stevie_operator.kinds`)."""

from __future__ import annotations

from typing import Any

from stevie_operator.framework.kind import Kind
from stevie_operator.kinds.ensemble.controller import EnsembleKind
from stevie_operator.kinds.hpostudy.controller import HPOStudyKind
from stevie_operator.kinds.pbtpopulation.controller import PBTPopulationKind
from stevie_operator.kinds.trainingrun.controller import TrainingRunKind

__all__ = ["KINDS"]

KINDS: dict[str, Kind[Any, Any, Any]] = {
    kind.name: kind
    for kind in (TrainingRunKind(), HPOStudyKind(), PBTPopulationKind(), EnsembleKind())
}
