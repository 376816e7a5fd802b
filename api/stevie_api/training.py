"""TrainingRun (`strun`): one agent trained, evaluated on validation, reported on test."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from stevie_api.algorithms import (
    Algorithm,
    DQNHyperparameters,
    PolicySpec,
    PPOHyperparameters,
    split_search_params,
)
from stevie_api.common import MetricSummary, ObjectMeta, StatusBase, StevieModel
from stevie_api.market import DataSpec, EnvSpec, ExpertSpec
from stevie_api.runtime import ImagePullPolicy, Resources, StorageSpec, Toleration
from stevie_api.techniques import (
    AugmentationSpec,
    BehaviourCloningSpec,
    CheckpointSpec,
    CurriculumSpec,
    EvaluationSpec,
)

__all__ = [
    "ArtifactsStatus",
    "JobPhase",
    "ProgressStatus",
    "TrainingRun",
    "TrainingRunSpec",
    "TrainingRunStatus",
]

JobPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class TrainingRunSpec(StevieModel):
    """What to train, on which data, how, and where it runs."""

    data: DataSpec = Field(description="Market data and its train/validation/test split.")
    env: EnvSpec = Field(
        default_factory=EnvSpec, description="Trading environment: observation, costs, reward."
    )
    expert: ExpertSpec = Field(
        default_factory=ExpertSpec,
        description="RSI/MA expert: a baseline in every report and the behaviour-cloning teacher.",
    )
    algorithm: Algorithm = Field(
        default="PPO", description="Reinforcement-learning algorithm (Stable-Baselines3)."
    )
    ppo: PPOHyperparameters = Field(
        default_factory=PPOHyperparameters, description="PPO hyperparameters (algorithm PPO)."
    )
    dqn: DQNHyperparameters = Field(
        default_factory=DQNHyperparameters, description="DQN hyperparameters (algorithm DQN)."
    )
    policy: PolicySpec = Field(default_factory=PolicySpec, description="Policy network.")
    total_timesteps: int = Field(
        default=100_000,
        gt=0,
        description="Environment steps to train for, summed over the nEnvs environments.",
    )
    seed: int = Field(
        default=0, ge=0, description="Random seed (environments, network init, augmentation)."
    )
    n_envs: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Environments stepped in parallel (one batched vectorised env).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu", description="PyTorch device: cpu, cuda, or auto (cuda if available)."
    )
    behaviour_cloning: BehaviourCloningSpec = Field(
        default_factory=BehaviourCloningSpec,
        description="Behaviour-cloning pre-training on the expert's actions (PPO only).",
    )
    augmentation: AugmentationSpec = Field(
        default_factory=AugmentationSpec,
        description="Data augmentation of the training split.",
    )
    curriculum: CurriculumSpec = Field(
        default_factory=CurriculumSpec, description="Volatility curriculum."
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="Periodic validation evaluation."
    )
    checkpoint: CheckpointSpec = Field(
        default_factory=CheckpointSpec, description="Checkpoints for resuming."
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Where models, checkpoints and reports go."
    )
    image: str | None = Field(
        default=None, description="Trainer container image (default: the operator's)."
    )
    image_pull_policy: ImagePullPolicy | None = Field(
        default=None, description="Image pull policy: Always, IfNotPresent or Never."
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU, memory and GPUs of each trainer pod."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels trainer pods must run on."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints trainer pods tolerate."
    )
    backoff_limit: int = Field(
        default=3,
        ge=0,
        description="Pod retries of a trainer Job before it fails (each retry resumes from "
        "the latest checkpoint).",
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock limit of a trainer Job, in seconds."
    )
    service_account_name: str | None = Field(
        default=None, description="Service account of trainer pods (e.g. for IRSA S3 access)."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingRunSpec:
        if self.behaviour_cloning.enabled and self.algorithm == "DQN":
            raise ValueError(
                "behaviourCloning.enabled is true but algorithm is DQN: behaviour cloning "
                "pre-trains the PPO policy network, so use algorithm PPO or set "
                "behaviourCloning.enabled to false"
            )
        if self.algorithm == "PPO" and self.ppo.n_steps * self.n_envs < 2:
            raise ValueError("ppo.nSteps x nEnvs must be at least 2 (PPO needs a rollout)")
        folds = self.evaluation.walk_forward.folds if self.evaluation.walk_forward else 1
        if self.total_timesteps < folds:
            raise ValueError(
                f"totalTimesteps ({self.total_timesteps}) is split among the "
                f"{folds} walk-forward folds: it must be at least evaluation.walkForward.folds"
            )
        self._check_markets()
        return self

    def _check_markets(self) -> None:
        """What a multi-market run (data.markets) cannot do yet, and its smallest batch.
        (With evaluation.walkForward, each market is cut into the same folds on its own bars.)"""
        markets = self.data.markets
        if markets is None:
            return
        if self.curriculum.enabled:
            raise ValueError("data.markets cannot be combined with curriculum yet")
        if self.n_envs < len(markets):
            raise ValueError(
                f"nEnvs ({self.n_envs}) must be at least the number of data.markets "
                f"({len(markets)}): each market trades in its own environments"
            )

    @property
    def hyperparameters(self) -> PPOHyperparameters | DQNHyperparameters:
        """The hyperparameters of the selected algorithm."""
        return self.ppo if self.algorithm == "PPO" else self.dqn

    def with_hyperparameters(self, params: dict[str, Any]) -> TrainingRunSpec:
        """A validated copy with some hyperparameters of the selected algorithm replaced
        (snake_case SB3 names, as in HPO search spaces and PBT mutations), and the env fields
        of ENV_SEARCH_PATHS (``env.noTradeBand``...) among them."""
        field = "ppo" if self.algorithm == "PPO" else "dqn"
        hyper, env = split_search_params(params)
        updated = self.hyperparameters.with_overrides(hyper)
        doc = {**self.model_dump(), field: updated.model_dump()}
        if env:
            doc["env"] = {**self.env.model_dump(), **env}
        return TrainingRunSpec.model_validate(doc)


class ProgressStatus(StevieModel):
    """Training progress."""

    timesteps: int = Field(default=0, ge=0, description="Timesteps trained so far.")
    total_timesteps: int | None = Field(
        default=None, ge=0, description="Timesteps to train in total."
    )
    percent: int = Field(default=0, ge=0, le=100, description="timesteps / totalTimesteps, %.")
    stage: str | None = Field(default=None, description="Current curriculum stage, if any.")
    fold: str | None = Field(
        default=None,
        description="Walk-forward fold being trained, as i/K (evaluation.walkForward only).",
    )


class ArtifactsStatus(StevieModel):
    """Where the run's outputs are."""

    uri: str | None = Field(default=None, description="Root URI of the run's artifacts.")
    model: str | None = Field(
        default=None, description="URI of the best model (by validation Sharpe), model.zip."
    )
    result: str | None = Field(
        default=None,
        description="URI of result.json: metrics, baselines, behaviour-cloning and "
        "curriculum details.",
    )


class TrainingRunStatus(StatusBase):
    """Observed state of a TrainingRun."""

    phase: JobPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    job_name: str | None = Field(default=None, description="Name of the trainer Job.")
    progress: ProgressStatus | None = Field(default=None, description="Training progress.")
    validation: MetricSummary | None = Field(
        default=None,
        description="Metrics of the best model on the validation split (with "
        "evaluation.walkForward: sharpe is the selection score over folds, the others the "
        "mean over folds).",
    )
    test: MetricSummary | None = Field(
        default=None,
        description="Metrics of the best model on the test split (reported, never optimised).",
    )
    artifacts: ArtifactsStatus | None = Field(default=None, description="Artifact URIs.")
    start_time: datetime | None = Field(
        default=None, description="When training started (RFC 3339)."
    )
    completion_time: datetime | None = Field(
        default=None, description="When the run succeeded or failed (RFC 3339)."
    )


class TrainingRun(StevieModel):
    """TrainingRun trains one trading agent (PPO or DQN, optionally with behaviour-cloning
    pre-training, augmentation and a curriculum), selects the best model on the validation
    split and reports it on the test split next to buy-and-hold, the expert and random."""

    api_version: Literal["stevie.dev/v1alpha1"] = Field(
        default="stevie.dev/v1alpha1", description="stevie.dev/v1alpha1"
    )
    kind: Literal["TrainingRun"] = Field(default="TrainingRun", description="TrainingRun")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: TrainingRunSpec = Field(description="Desired training run.")
    status: TrainingRunStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
