"""The four kinds: names (plural, short names), models, and the Resource union."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from stevie_api import GROUP, VERSION
from stevie_api.ensemble import Ensemble
from stevie_api.hpo import HPOStudy
from stevie_api.pbt import PBTPopulation
from stevie_api.training import TrainingRun

__all__ = ["KINDS", "KindInfo", "PrinterColumn", "Resource", "ResourceModel", "kind_info"]

Resource: TypeAlias = TrainingRun | HPOStudy | PBTPopulation | Ensemble
"""Any Stevie resource."""

ResourceModel: TypeAlias = type[TrainingRun] | type[HPOStudy] | type[PBTPopulation] | type[Ensemble]


@dataclass(frozen=True)
class PrinterColumn:
    """An additionalPrinterColumns entry of a CRD."""

    name: str
    type: str
    json_path: str
    description: str
    format: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    """Naming of one kind in the Kubernetes API."""

    kind: str
    plural: str
    singular: str
    short_name: str
    model: ResourceModel
    printer_columns: tuple[PrinterColumn, ...]

    @property
    def group(self) -> str:
        """API group."""
        return GROUP

    @property
    def version(self) -> str:
        """API version."""
        return VERSION

    @property
    def crd_name(self) -> str:
        """Name of the CustomResourceDefinition, e.g. trainingruns.stevie.dev."""
        return f"{self.plural}.{GROUP}"


_PHASE = PrinterColumn("Phase", "string", ".status.phase", "Phase of the resource.")
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            "TrainingRun",
            "trainingruns",
            "trainingrun",
            "strun",
            TrainingRun,
            (
                _PHASE,
                PrinterColumn("Progress", "integer", ".status.progress.percent", "Progress, %."),
                PrinterColumn(
                    "Val-Sharpe",
                    "number",
                    ".status.validation.sharpe",
                    "Validation Sharpe of the best model.",
                ),
                PrinterColumn(
                    "Test-Sharpe",
                    "number",
                    ".status.test.sharpe",
                    "Test Sharpe of the best model.",
                ),
                PrinterColumn("Algorithm", "string", ".spec.algorithm", "Algorithm.", priority=1),
                _AGE,
            ),
        ),
        KindInfo(
            "HPOStudy",
            "hpostudies",
            "hpostudy",
            "hpo",
            HPOStudy,
            (
                _PHASE,
                PrinterColumn(
                    "Completed", "integer", ".status.trials.completed", "Completed trials."
                ),
                PrinterColumn("Max-Trials", "integer", ".spec.maxTrials", "Trials in total."),
                PrinterColumn("Best", "number", ".status.bestValue", "Best objective value."),
                PrinterColumn(
                    "Best-Trial", "integer", ".status.bestTrial", "Best trial.", priority=1
                ),
                _AGE,
            ),
        ),
        KindInfo(
            "PBTPopulation",
            "pbtpopulations",
            "pbtpopulation",
            "pbt",
            PBTPopulation,
            (
                _PHASE,
                PrinterColumn(
                    "Intervals",
                    "integer",
                    ".status.intervalsCompleted",
                    "Member intervals completed.",
                ),
                PrinterColumn(
                    "Best-Fitness", "number", ".status.bestFitness", "Best fitness so far."
                ),
                PrinterColumn(
                    "Best-Member", "integer", ".status.bestMember", "Member with best fitness."
                ),
                PrinterColumn(
                    "Size", "integer", ".spec.populationSize", "Population size.", priority=1
                ),
                _AGE,
            ),
        ),
        KindInfo(
            "Ensemble",
            "ensembles",
            "ensemble",
            "ens",
            Ensemble,
            (
                _PHASE,
                PrinterColumn("Ready", "integer", ".status.readyMembers", "Members ready."),
                PrinterColumn("Method", "string", ".spec.method", "Voting method."),
                PrinterColumn(
                    "Test-Sharpe",
                    "number",
                    ".status.backtest.sharpe",
                    "Test Sharpe of the ensemble.",
                ),
                _AGE,
            ),
        ),
    )
}


def kind_info(kind: str) -> KindInfo:
    """Naming of a kind; KeyError names the known kinds."""
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})") from None
