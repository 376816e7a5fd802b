"""PBTPopulation (`pbt`): population-based training of a TrainingRun template."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from stevie_api.algorithms import check_param_space, default_pbt_mutations
from stevie_api.common import (
    MetricSummary,
    ObjectMeta,
    ParamSpec,
    ParamValue,
    StatusBase,
    StevieModel,
)
from stevie_api.training import JobPhase, TrainingRunSpec

__all__ = [
    "FitnessWeights",
    "PBTMemberSummary",
    "PBTOverfittingStatus",
    "PBTPopulation",
    "PBTPopulationSpec",
    "PBTPopulationStatus",
    "PBTStoppingSpec",
]


class FitnessWeights(StevieModel):
    """Weights of the fitness, a weighted sum of validation-split metrics (seed default:
    0.4 Sharpe + 0.3 mean profit + 0.2 win rate + 0.1 stability)."""

    sharpe: float = Field(default=0.4, ge=0, description="Weight of the validation Sharpe.")
    mean_profit: float = Field(
        default=0.3, ge=0, description="Weight of the mean profit per validation episode."
    )
    win_rate: float = Field(default=0.2, ge=0, description="Weight of the validation win rate.")
    stability: float = Field(
        default=0.1,
        ge=0,
        description="Weight of stability (R^2 of log equity against time on validation).",
    )

    @model_validator(mode="after")
    def _check(self) -> FitnessWeights:
        if self.sharpe + self.mean_profit + self.win_rate + self.stability <= 0:
            raise ValueError("at least one fitness weight must be > 0")
        return self

    def as_dict(self) -> dict[str, float]:
        """The weights by metric name (snake_case)."""
        return {
            "sharpe": self.sharpe,
            "mean_profit": self.mean_profit,
            "win_rate": self.win_rate,
            "stability": self.stability,
        }


class PBTStoppingSpec(StevieModel):
    """When the population stops."""

    max_intervals: int = Field(
        default=10,
        ge=1,
        description="Intervals each member trains (a member trains maxIntervals x "
        "perturbationInterval timesteps).",
    )
    target_fitness: float | None = Field(
        default=None, description="Stop early when a member reaches this fitness."
    )


class PBTPopulationSpec(StevieModel):
    """The population: template, size, schedule, exploit/explore rules and fitness."""

    template: TrainingRunSpec = Field(
        description="TrainingRun spec of every member (its totalTimesteps is replaced by the "
        "PBT schedule: maxIntervals x perturbationInterval per member)."
    )
    population_size: int = Field(default=8, ge=2, le=1024, description="Members.")
    perturbation_interval: int = Field(
        default=10_000,
        ge=1,
        description="Timesteps a member trains between two exploit/explore decisions.",
    )
    mode: Literal["async", "sync"] = Field(
        default="async",
        description="async (PBT paper, Ray Tune): each member exploits/explores as soon as "
        "its interval ends; sync: every member trains an interval, then the population is "
        "ranked (generations).",
    )
    quantile_fraction: float = Field(
        default=0.25,
        gt=0,
        le=0.5,
        description="Bottom fraction of members that exploit (copy) a member of the top "
        "fraction of the same size.",
    )
    resample_probability: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Explore: probability of resampling a hyperparameter from its prior "
        "instead of perturbing it.",
    )
    perturbation_factors: list[float] = Field(
        default_factory=lambda: [0.8, 1.2],
        min_length=1,
        description="Explore: a perturbed hyperparameter is multiplied by one of these "
        "factors (then clipped into its prior's range).",
    )
    hyperparam_mutations: dict[str, ParamSpec] = Field(
        default_factory=default_pbt_mutations,
        description="Hyperparameters that evolve, by snake_case Stable-Baselines3 name, "
        "with their priors (also the initial distribution); also the cost-aware acting rules "
        "of the env, by path: env.noTradeBand, env.minHoldBars, env.turnoverPenalty (a "
        "member's next interval trains and is scored under its new values). Default for "
        "PPO: learning_rate 1e-5..1e-2 log, ent_coef 1e-4..1e-1 log, clip_range 0.1..0.4, "
        "gamma 0.9..0.9999; for DQN: learning_rate, gamma, exploration_final_eps.",
    )
    fitness: FitnessWeights = Field(
        default_factory=FitnessWeights,
        description="Fitness weights (validation split only).",
    )
    stopping: PBTStoppingSpec = Field(default_factory=PBTStoppingSpec, description="Stopping rule.")
    parallelism: int = Field(default=2, ge=1, description="Members training at once.")
    max_interval_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a failed interval before the member is marked failed (the "
        "population goes on without it).",
    )

    @model_validator(mode="after")
    def _check(self) -> PBTPopulationSpec:
        if "hyperparam_mutations" not in self.model_fields_set:
            self.hyperparam_mutations = default_pbt_mutations(self.template.algorithm)
        if not self.hyperparam_mutations:
            raise ValueError("hyperparamMutations must have at least one hyperparameter")
        check_param_space(self.template.algorithm, self.hyperparam_mutations, "hyperparamMutations")
        bad = [f for f in self.perturbation_factors if f <= 0]
        if bad:
            raise ValueError(f"perturbationFactors must be > 0 (got {bad})")
        # template.data.markets is allowed: a member trains on every market and is scored
        # on the pooled validation (stevie_trainer.rl.agent.validation_pass); nEnvs >=
        # markets is the template's own (TrainingRunSpec) check.
        if self.template.evaluation.walk_forward is not None:
            # A member trains on, and is scored on, one split interval after interval: it
            # cannot be K agents, and silently scoring it on the single split would be worse.
            raise ValueError(
                "template.evaluation.walkForward is not supported by a PBTPopulation (a "
                "member is one agent scored on the validation split at every interval); "
                "remove it, or use an HPOStudy for walk-forward selection"
            )
        return self

    @property
    def quantile_size(self) -> int:
        """Members in the bottom (and top) quantile: at least 1."""
        return max(1, int(self.population_size * self.quantile_fraction))

    @property
    def timesteps_per_member(self) -> int:
        """Timesteps each member trains in total."""
        return self.stopping.max_intervals * self.perturbation_interval


class PBTMemberSummary(StevieModel):
    """One member in the status' leaderboard."""

    member: int = Field(ge=0, description="Member index.")
    fitness: float | None = Field(default=None, description="Latest validation fitness.")
    interval: int = Field(default=0, ge=0, description="Intervals completed.")
    hyperparameters: dict[str, ParamValue] = Field(
        default_factory=dict, description="Current hyperparameters."
    )


class PBTOverfittingStatus(StevieModel):
    """How much of the best result is luck (issue 13), from every (member, interval)
    evaluation's validation Sharpe; a value is null when it could not be computed honestly,
    and `note` says why."""

    deflated_sharpe: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Deflated Sharpe Ratio of the best member's selected interval: the "
        "probability that its true validation Sharpe beats the best that `trials` "
        "evaluations reach by luck.",
    )
    trials: int | None = Field(
        default=None,
        ge=0,
        description="Configurations tried: every (member, interval) evaluated on validation, "
        "exploited copies included.",
    )
    note: str | None = Field(
        default=None, description="How the value was computed, or why it was not."
    )


class PBTPopulationStatus(StatusBase):
    """Observed state of a PBTPopulation (a summary: history and lineage are in storage)."""

    phase: JobPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    intervals_completed: int = Field(
        default=0, ge=0, description="Member intervals completed, over all members."
    )
    members_running: int = Field(default=0, ge=0, description="Members training now.")
    members_failed: int = Field(default=0, ge=0, description="Members marked failed.")
    exploits: int = Field(default=0, ge=0, description="Exploit decisions so far.")
    best_fitness: float | None = Field(default=None, description="Best fitness so far.")
    best_member: int | None = Field(
        default=None, ge=0, description="Index of the member with the best fitness."
    )
    top: list[PBTMemberSummary] = Field(
        default_factory=list, max_length=5, description="Top 5 members by fitness."
    )
    test: MetricSummary | None = Field(
        default=None, description="Test-split metrics of the best member's model."
    )
    overfitting: PBTOverfittingStatus | None = Field(
        default=None, description="Deflated Sharpe Ratio of the best member's evaluation."
    )
    summary_uri: str | None = Field(default=None, description="URI of pbt_summary.json.")
    best_model_uri: str | None = Field(default=None, description="URI of the best member's model.")
    start_time: datetime | None = Field(default=None, description="When the population started.")
    completion_time: datetime | None = Field(
        default=None, description="When the population finished."
    )


class PBTPopulation(StevieModel):
    """PBTPopulation evolves a population of trading agents with population-based training:
    members train in intervals; the worst copy the best and perturb their hyperparameters."""

    api_version: Literal["stevie.dev/v1alpha1"] = Field(
        default="stevie.dev/v1alpha1", description="stevie.dev/v1alpha1"
    )
    kind: Literal["PBTPopulation"] = Field(default="PBTPopulation", description="PBTPopulation")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: PBTPopulationSpec = Field(description="Desired population.")
    status: PBTPopulationStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
