"""Ensemble (`ens`): a vote of trained agents, backtested against its members and served."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stevie_api.common import MetricSummary, ObjectMeta, StatusBase, StevieModel
from stevie_api.hpo import check_validation_metric
from stevie_api.market import DataSpec
from stevie_api.runtime import ImagePullPolicy, Resources, StorageSpec, Toleration

__all__ = [
    "Ensemble",
    "EnsembleMember",
    "EnsembleMemberStatus",
    "EnsembleSpec",
    "EnsembleStatus",
    "ServingSpec",
    "ServingStatus",
]

_SOURCES = ("training_run", "pbt_population", "hpo_study", "uri")
_SOURCE_NAMES = {
    "training_run": "trainingRun",
    "pbt_population": "pbtPopulation",
    "hpo_study": "hpoStudy",
    "uri": "uri",
}


class EnsembleMember(StevieModel):
    """One member: exactly one of trainingRun, pbtPopulation, hpoStudy or uri."""

    name: str | None = Field(
        default=None,
        description="Member name in reports and status (default: the referenced resource's "
        "name, or member-<index> for a uri).",
    )
    weight: float | None = Field(
        default=None,
        ge=0,
        description="Fixed voting weight, on the scale of weightMetric (it stands in for the "
        "member's metric before the weights are normalised); default: its weightMetric, "
        "clipped at 0.",
    )
    training_run: str | None = Field(
        default=None, description="A TrainingRun in the same namespace: its best model."
    )
    pbt_population: str | None = Field(
        default=None,
        description="A PBTPopulation in the same namespace: its best member's model.",
    )
    hpo_study: str | None = Field(
        default=None,
        description="An HPOStudy in the same namespace: its best trial's model.",
    )
    uri: str | None = Field(
        default=None,
        description="URI of a model.zip trained by Stevie (file:// or s3://), with its "
        "result.json beside it.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnsembleMember:
        given = [_SOURCE_NAMES[s] for s in _SOURCES if getattr(self, s)]
        if len(given) != 1:
            got = f"got {len(given)}: {', '.join(given)}" if given else "got none"
            raise ValueError(
                f"set exactly one of trainingRun, pbtPopulation, hpoStudy, uri ({got})"
            )
        return self

    @property
    def source_kind(self) -> Literal["TrainingRun", "PBTPopulation", "HPOStudy", "uri"]:
        """Which kind of reference the member is."""
        if self.training_run:
            return "TrainingRun"
        if self.pbt_population:
            return "PBTPopulation"
        if self.hpo_study:
            return "HPOStudy"
        return "uri"

    @property
    def reference(self) -> str:
        """The referenced resource name or URI."""
        return self.training_run or self.pbt_population or self.hpo_study or self.uri or ""


class ServingSpec(StevieModel):
    """The decision service: an HTTP endpoint returning the ensemble's action for a window
    of bars."""

    enabled: bool = Field(default=False, description="Run the decision service after the backtest.")
    replicas: int = Field(default=1, ge=1, le=100, description="Service pods.")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port of the service.")


class EnsembleSpec(StevieModel):
    """Members, voting method and weights, backtest data and serving."""

    members: list[EnsembleMember] = Field(
        min_length=1, description="Agents voting in the ensemble."
    )
    method: Literal[
        "performance_weighted",
        "confidence",
        "majority",
        "boltzmann_addition",
        "boltzmann_multiplication",
    ] = Field(
        default="performance_weighted",
        description="performance_weighted: each member's vote counts its weight (from "
        "weightMetric); confidence: its weight x its probability of its vote; majority: one "
        "member, one vote; boltzmann_addition / boltzmann_multiplication: the weighted sum / "
        "product of the members' action probabilities (Wiering & van Hasselt 2008). PPO "
        "members give their policy distribution, DQN members the softmax of their Q-values.",
    )
    weight_metric: str = Field(
        default="validation.sharpe",
        description="Validation metric weighting members (performance_weighted): "
        "validation.<name>, e.g. validation.sharpe.",
    )
    reweight_window: int | None = Field(
        default=None,
        ge=1,
        description="Dynamic re-weighting: recompute weights from each member's performance "
        "over the last reweightWindow bars; default: static weights.",
    )
    no_trade_band: float | None = Field(
        default=None,
        ge=0,
        description="The ensemble's no-trade band (a fraction of equity, as a TrainingRun's "
        "env.noTradeBand): an order smaller than it is not placed, in the backtest and by "
        "the decision service. Default: the members' own, which must then be the same (the "
        "ensemble trades one account under one rule; members that differ are refused, "
        "named). Each member backtested alone keeps the band it was trained with.",
    )
    min_hold_bars: int | None = Field(
        default=None,
        ge=0,
        description="The ensemble's minimum holding period in bars (as a TrainingRun's "
        "env.minHoldBars): after a target change the next minHoldBars decisions keep the "
        "target, in the backtest and by the decision service. Default: the members' own, "
        "which must then be the same (members that differ are refused, named). Each member "
        "backtested alone keeps the hold it was trained with.",
    )
    data: DataSpec | None = Field(
        default=None,
        description="Data of the backtest (its test split is used); default: the members' data.",
    )
    serving: ServingSpec = Field(default_factory=ServingSpec, description="Decision service.")
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Where the backtest report goes."
    )
    image: str | None = Field(
        default=None, description="Container image of the backtest and service pods."
    )
    image_pull_policy: ImagePullPolicy | None = Field(
        default=None, description="Image pull policy: Always, IfNotPresent or Never."
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU and memory of each backtest/service pod."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels backtest and service pods must run on."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints backtest and service pods tolerate."
    )
    backoff_limit: int = Field(
        default=2, ge=0, description="Pod retries of the backtest Job before it fails."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock limit of the backtest Job, in seconds."
    )
    service_account_name: str | None = Field(
        default=None, description="Service account of backtest and service pods."
    )

    @property
    def member_names(self) -> list[str]:
        """Each member's name in reports and status: its ``name``, else the referenced
        resource's name, else ``member-<index>`` for a uri (what the operator and the
        backtest both call them)."""
        return [
            m.name or (m.reference if m.source_kind != "uri" else f"member-{i}")
            for i, m in enumerate(self.members)
        ]

    @field_validator("weight_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return check_validation_metric(value)

    @model_validator(mode="after")
    def _check(self) -> EnsembleSpec:
        names = [m.name for m in self.members if m.name]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"members: names must be unique (repeated: {', '.join(repeated)})")
        return self


class EnsembleMemberStatus(StevieModel):
    """One member as resolved and backtested."""

    name: str = Field(description="Member name.")
    source: str | None = Field(
        default=None,
        description="TrainingRun/<name>, PBTPopulation/<name>, HPOStudy/<name> or uri.",
    )
    model_uri: str | None = Field(default=None, description="Resolved model URI.")
    ready: bool = Field(default=False, description="Whether its model is available.")
    state: str | None = Field(
        default=None, description="Why it is (not) ready: its source's phase, or a problem."
    )
    weight: float | None = Field(default=None, description="Static voting weight.")
    validation: MetricSummary | None = Field(
        default=None, description="Its validation metrics (what its weight comes from)."
    )
    test: MetricSummary | None = Field(
        default=None, description="The member alone, backtested on the same test split."
    )


class ServingStatus(StevieModel):
    """State of the decision service."""

    ready_replicas: int = Field(default=0, ge=0, description="Service pods ready.")
    url: str | None = Field(default=None, description="In-cluster URL of the service.")


class EnsembleStatus(StatusBase):
    """Observed state of an Ensemble."""

    phase: Literal["Pending", "Running", "Serving", "Succeeded", "Failed"] | None = Field(
        default=None,
        description="Pending (members not ready), Running (backtest), Serving, Succeeded "
        "(backtest done, no service) or Failed.",
    )
    members: list[EnsembleMemberStatus] = Field(
        default_factory=list, description="Members, resolved."
    )
    ready_members: int = Field(default=0, ge=0, description="Members with a model available.")
    version: str | None = Field(
        default=None,
        description="Hash of the members' models, weights and the method: what the backtest "
        "and the serving pods run (a new version rolls the Deployment).",
    )
    job_name: str | None = Field(default=None, description="The backtest Job of this version.")
    backtest: MetricSummary | None = Field(
        default=None, description="Test-split metrics of the ensemble."
    )
    buy_and_hold: MetricSummary | None = Field(
        default=None, description="Buy-and-hold on the same test split, for comparison."
    )
    best_member: str | None = Field(
        default=None,
        description="Member with the best validation Sharpe (chosen without the test split).",
    )
    best_member_test: MetricSummary | None = Field(
        default=None, description="That member alone on the test split."
    )
    report_uri: str | None = Field(default=None, description="URI of the backtest report.")
    serving: ServingStatus | None = Field(default=None, description="Decision service.")
    completion_time: datetime | None = Field(
        default=None, description="When the backtest finished."
    )


class Ensemble(StevieModel):
    """Ensemble combines trained agents (TrainingRuns, the best of PBTPopulations or
    HPOStudies, or model URIs) by vote, backtests it against every member and can serve
    its decisions over HTTP."""

    api_version: Literal["stevie.dev/v1alpha1"] = Field(
        default="stevie.dev/v1alpha1", description="stevie.dev/v1alpha1"
    )
    kind: Literal["Ensemble"] = Field(default="Ensemble", description="Ensemble")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: EnsembleSpec = Field(description="Desired ensemble.")
    status: EnsembleStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
