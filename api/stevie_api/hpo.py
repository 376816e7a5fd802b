"""HPOStudy (`hpo`): Optuna hyperparameter search over a TrainingRun template, one Job per
trial (Katib style)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stevie_api.algorithms import check_param_space, default_hpo_search_space
from stevie_api.common import ObjectMeta, ParamSpec, ParamValue, StatusBase, StevieModel
from stevie_api.training import JobPhase, TrainingRunSpec

__all__ = [
    "HPOStorageSpec",
    "HPOStudy",
    "HPOStudySpec",
    "HPOStudyStatus",
    "Objective",
    "OverfittingStatus",
    "SeedSpreadStatus",
    "SignificanceSpec",
    "SignificanceStatus",
    "TrialCounts",
    "TrialSummary",
    "check_validation_metric",
]

_VALIDATION_METRIC = re.compile(r"^validation\.[a-z][a-z0-9_]*$")


def check_validation_metric(value: str) -> str:
    """Model selection uses the validation split only: metrics are `validation.<name>`."""
    if not _VALIDATION_METRIC.match(value):
        raise ValueError(
            f"{value!r} is not a validation metric: use validation.<metric> (e.g. "
            "validation.sharpe, validation.max_drawdown); the test split is reported, never "
            "optimised"
        )
    return value


class Objective(StevieModel):
    """One objective of the study."""

    metric: str = Field(
        default="validation.sharpe",
        description="Metric of the trial's validation evaluation to optimise: "
        "validation.<name>, e.g. validation.sharpe, validation.sortino, "
        "validation.total_return, validation.max_drawdown, validation.win_rate.",
    )
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="maximize or minimize."
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return check_validation_metric(value)


class HPOStorageSpec(StevieModel):
    """Optuna study storage (it survives operator restarts and opens in optuna-dashboard)."""

    url_secret_ref: str | None = Field(
        default=None,
        description="Name of a Secret whose key urlSecretKey holds an RDB URL (e.g. "
        "postgresql://user:pass@host/db) for the study. Default: a JournalStorage file.",
    )
    url_secret_key: str = Field(
        default="url", min_length=1, description="Key of the RDB URL in urlSecretRef."
    )
    journal_path: str | None = Field(
        default=None,
        description="Path of the Optuna JournalStorage file, on the shared volume. Default: "
        "optuna.journal in the study's artifact folder.",
    )

    @model_validator(mode="after")
    def _check(self) -> HPOStorageSpec:
        if self.url_secret_ref and self.journal_path:
            raise ValueError("set at most one of urlSecretRef and journalPath")
        return self


class SignificanceSpec(StevieModel):
    """Re-training of the best and the default configuration over several seeds, compared
    on validation (Welch's t-test and a bootstrap confidence interval)."""

    enabled: bool = Field(default=True, description="Run the comparison after the search.")
    seeds: int = Field(
        default=3, ge=2, le=100, description="Seeds each configuration is re-trained with."
    )
    confidence: float = Field(
        default=0.95, gt=0, lt=1, description="Confidence level of the interval and test."
    )


class HPOStudySpec(StevieModel):
    """The search: template, space, sampler, pruner, objectives and budget."""

    template: TrainingRunSpec = Field(
        description="TrainingRun spec each trial starts from; sampled hyperparameters "
        "replace the template's (ppo or dqn, per its algorithm)."
    )
    search_space: dict[str, ParamSpec] = Field(
        default_factory=default_hpo_search_space,
        description="Hyperparameters to search, by snake_case Stable-Baselines3 name, with "
        "their priors; also the cost-aware acting rules of the env, by path: "
        "env.noTradeBand, env.minHoldBars, env.turnoverPenalty. Default (PPO, the seed's): "
        "learning_rate 1e-5..1e-2 log, gamma 0.9..0.9999, clip_range 0.1..0.4, batch_size "
        "{32,64,128,256}, n_steps {1024,2048,4096}, ent_coef 1e-4..1e-1 log; for DQN: "
        "learning_rate, gamma, batch_size, buffer_size, exploration_fraction, "
        "target_update_interval.",
    )
    sampler: Literal["tpe", "random", "cmaes", "nsga2"] = Field(
        default="tpe", description="Optuna sampler: tpe, random, cmaes or nsga2."
    )
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = Field(
        default="median",
        description="Optuna pruner stopping unpromising trials on their intermediate "
        "validation scores: median, hyperband, successive_halving or none (required with "
        "several objectives).",
    )
    startup_trials: int = Field(
        default=5,
        ge=0,
        description="Trials sampled at random, and completed before pruning starts.",
    )
    warmup_evaluations: int = Field(
        default=1,
        ge=0,
        description="Validation evaluations of a trial before it may be pruned.",
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective()],
        min_length=1,
        description="What to optimise (default: maximize validation.sharpe). Several "
        "objectives make a multi-objective study (sampler nsga2 or tpe, pruner none).",
    )
    max_trials: int = Field(default=20, ge=1, description="Trials to run in total.")
    parallelism: int = Field(default=2, ge=1, description="Trials running at once.")
    seeds_per_trial: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Seeds each trial trains with; its value is the mean over seeds.",
    )
    max_failed_trials: int = Field(
        default=3,
        ge=0,
        description="Failed trials tolerated (each is replaced) before the study fails.",
    )
    storage: HPOStorageSpec = Field(
        default_factory=HPOStorageSpec, description="Optuna study storage."
    )
    significance: SignificanceSpec = Field(
        default_factory=SignificanceSpec,
        description="Best vs default configuration over several seeds.",
    )

    @model_validator(mode="after")
    def _check(self) -> HPOStudySpec:
        if "search_space" not in self.model_fields_set:
            self.search_space = default_hpo_search_space(self.template.algorithm)
        if not self.search_space:
            raise ValueError("searchSpace must have at least one hyperparameter")
        check_param_space(self.template.algorithm, self.search_space, "searchSpace")
        # template.data.markets is allowed: a trial's objective is then the pooled validation
        # (over markets, and over folds with walkForward), as a TrainingRun of it selects.
        metrics = [o.metric for o in self.objectives]
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            raise ValueError(f"objectives: metric repeated: {', '.join(repeated)}")
        if len(self.objectives) > 1:
            if self.sampler not in ("nsga2", "tpe"):
                raise ValueError(
                    f"sampler {self.sampler} does not support several objectives: use "
                    "sampler nsga2 or tpe"
                )
            if self.pruner != "none":
                raise ValueError(
                    f"pruner {self.pruner} cannot prune a multi-objective study: set "
                    "pruner: none (or use a single objective)"
                )
        return self

    @property
    def multi_objective(self) -> bool:
        """Whether the study has several objectives."""
        return len(self.objectives) > 1


class TrialCounts(StevieModel):
    """Trials by state."""

    running: int = Field(default=0, ge=0, description="Trials training now.")
    completed: int = Field(default=0, ge=0, description="Trials that completed.")
    pruned: int = Field(default=0, ge=0, description="Trials stopped by the pruner.")
    failed: int = Field(default=0, ge=0, description="Trials that failed.")


class SignificanceStatus(StevieModel):
    """Best vs default configuration, re-trained over several seeds."""

    best_mean: float | None = Field(
        default=None, description="Mean validation objective of the best configuration."
    )
    default_mean: float | None = Field(
        default=None, description="Mean validation objective of the default configuration."
    )
    p_value: float | None = Field(default=None, description="Welch's t-test p-value.")
    ci_low: float | None = Field(
        default=None, description="Bootstrap confidence interval of the difference: low."
    )
    ci_high: float | None = Field(
        default=None, description="Bootstrap confidence interval of the difference: high."
    )
    significant: bool | None = Field(
        default=None, description="Whether the best beats the default at the confidence level."
    )


class OverfittingStatus(StevieModel):
    """How much of the best result is luck (issue 13), from the trials' validation returns;
    a value is null when it could not be computed honestly, and `note` says why."""

    deflated_sharpe: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Deflated Sharpe Ratio of the best trial: the probability that its true "
        "validation Sharpe beats the best that `trials` configurations reach by luck.",
    )
    trials: int | None = Field(
        default=None,
        ge=0,
        description="Configurations tried: completed, pruned, and failed after an evaluation.",
    )
    pbo: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Probability of Backtest Overfitting by CSCV over the trials' per-bar "
        "validation returns: how often the in-sample best ranks in the bottom half out of sample.",
    )
    pbo_combinations: int | None = Field(
        default=None, ge=0, description="CSCV splits the PBO was computed over."
    )
    note: str | None = Field(
        default=None, description="How each value was computed, or why it was not."
    )


class SeedSpreadStatus(StevieModel):
    """The best trial's validation Sharpe over its seeds (spec.seedsPerTrial): how much of its
    value is the seed's luck. With one seed there is no spread: std, min and max are null."""

    trial: int | None = Field(
        default=None,
        ge=0,
        description="The trial these seeds are of (the best one when the finish Job ran).",
    )
    seeds: int = Field(
        default=0, ge=0, description="Seeds with a validation Sharpe (pruned seeds left out)."
    )
    sharpe_mean: float | None = Field(
        default=None, description="Mean over the seeds of their annualised validation Sharpe."
    )
    sharpe_std: float | None = Field(
        default=None,
        ge=0,
        description="Standard deviation (ddof 1) of the seeds' validation Sharpes; null "
        "with fewer than 2 seeds.",
    )
    sharpe_min: float | None = Field(
        default=None, description="Lowest seed validation Sharpe; null with fewer than 2 seeds."
    )
    sharpe_max: float | None = Field(
        default=None, description="Highest seed validation Sharpe; null with fewer than 2 seeds."
    )


class TrialSummary(StevieModel):
    """One trial in the status' leaderboard."""

    number: int = Field(ge=0, description="Trial number.")
    values: list[float] = Field(
        default_factory=list, description="Objective values, in the order of spec.objectives."
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Sampled hyperparameters."
    )


class HPOStudyStatus(StatusBase):
    """Observed state of an HPOStudy (a summary: every trial is in storage)."""

    phase: JobPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    trials: TrialCounts | None = Field(default=None, description="Trials by state.")
    best_trial: int | None = Field(
        default=None, ge=0, description="Number of the best trial so far."
    )
    best_value: float | None = Field(
        default=None,
        description="Objective value of the best trial (the first objective, for a "
        "multi-objective study).",
    )
    best_values: list[float] | None = Field(
        default=None, description="All objective values of the best trial (multi-objective)."
    )
    best_params: dict[str, ParamValue] | None = Field(
        default=None, description="Hyperparameters of the best trial."
    )
    best_seed_spread: SeedSpreadStatus | None = Field(
        default=None,
        description="Spread of the best trial's per-seed validation Sharpes (set by the "
        "finish Job; cleared when another trial becomes the best).",
    )
    top: list[TrialSummary] = Field(
        default_factory=list,
        max_length=5,
        description="Best 5 completed trials (the Pareto front's first 5, multi-objective).",
    )
    pareto_front_size: int | None = Field(
        default=None, ge=0, description="Trials on the Pareto front (multi-objective)."
    )
    significance: SignificanceStatus | None = Field(
        default=None, description="Best vs default configuration over several seeds."
    )
    overfitting: OverfittingStatus | None = Field(
        default=None, description="Deflated Sharpe Ratio of the best trial and the study's PBO."
    )
    results_uri: str | None = Field(
        default=None, description="URI of optimization_results.json (every trial)."
    )
    report_uri: str | None = Field(
        default=None, description="URI of optimization_report.txt (human summary)."
    )
    start_time: datetime | None = Field(default=None, description="When the study started.")
    completion_time: datetime | None = Field(default=None, description="When the study finished.")


class HPOStudy(StevieModel):
    """HPOStudy searches hyperparameters of a TrainingRun template with Optuna (samplers,
    pruning, multi-objective), one trainer Job per trial, optimising validation metrics."""

    api_version: Literal["stevie.dev/v1alpha1"] = Field(
        default="stevie.dev/v1alpha1", description="stevie.dev/v1alpha1"
    )
    kind: Literal["HPOStudy"] = Field(default="HPOStudy", description="HPOStudy")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: HPOStudySpec = Field(description="Desired study.")
    status: HPOStudyStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
