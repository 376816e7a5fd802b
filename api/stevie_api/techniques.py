"""Training techniques of a TrainingRun: behaviour cloning, augmentation, curriculum,
evaluation and checkpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from stevie_api.common import StevieModel

__all__ = [
    "DEFAULT_STAGES",
    "AugmentationSpec",
    "BehaviourCloningSpec",
    "CheckpointSpec",
    "CurriculumSpec",
    "CurriculumStage",
    "EvaluationSpec",
    "NoiseSpec",
    "RegimeShiftSpec",
    "ScalingRangeSpec",
    "VolumeScalingSpec",
    "WalkForwardSpec",
]

CurriculumStage = Literal["stable", "moderate", "high_volatility", "turbulent"]
DEFAULT_STAGES: tuple[CurriculumStage, ...] = ("stable", "moderate", "high_volatility", "turbulent")


class BehaviourCloningSpec(StevieModel):
    """Behaviour-cloning pre-training of the PPO policy on the expert's actions."""

    enabled: bool = Field(
        default=False,
        description="Pre-train the policy network to imitate the RSI/MA expert on the "
        "training split before reinforcement learning (PPO only).",
    )
    epochs: int = Field(default=20, ge=1, description="Maximum supervised training epochs.")
    learning_rate: float = Field(
        default=1e-3, gt=0, le=1, description="Adam learning rate of the pre-training."
    )
    batch_size: int = Field(default=256, ge=1, description="Demonstrations per minibatch.")
    validation_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Fraction of the demonstrations (the most recent) held out for early stopping.",
    )
    patience: int = Field(
        default=3,
        ge=1,
        description="Stop after this many epochs without a lower validation loss.",
    )


class NoiseSpec(StevieModel):
    """Gaussian noise on prices."""

    enabled: bool = Field(default=True, description="Apply this technique.")
    std: float = Field(
        default=0.001,
        ge=0,
        le=1,
        description="Standard deviation of the multiplicative noise (0.001 = 0.1% of price).",
    )


class VolumeScalingSpec(StevieModel):
    """Random scaling of volumes."""

    enabled: bool = Field(default=True, description="Apply this technique.")
    range: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Volumes are scaled by a factor drawn from [1 - range, 1 + range].",
    )


class RegimeShiftSpec(StevieModel):
    """Random price regime shifts (a drift added to log returns over a segment)."""

    enabled: bool = Field(default=True, description="Apply this technique.")
    magnitude: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="Largest per-bar drift of a shifted regime, as a fraction (0.002 = 0.2%).",
    )


class ScalingRangeSpec(StevieModel):
    """A technique drawing a factor from [low, high]."""

    enabled: bool = Field(default=True, description="Apply this technique.")
    low: float = Field(default=0.8, gt=0, description="Smallest factor.")
    high: float = Field(default=1.2, gt=0, description="Largest factor (>= low).")

    @model_validator(mode="after")
    def _check(self) -> ScalingRangeSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class AugmentationSpec(StevieModel):
    """Seeded data augmentation, applied to the training split only (never validation/test)."""

    enabled: bool = Field(
        default=False, description="Train on augmented copies of the training split too."
    )
    noise: NoiseSpec = Field(
        default_factory=NoiseSpec, description="Gaussian price noise (default 0.1% std)."
    )
    volume_scaling: VolumeScalingSpec = Field(
        default_factory=VolumeScalingSpec, description="Volume scaling (default +/-5%)."
    )
    regime_shift: RegimeShiftSpec = Field(
        default_factory=RegimeShiftSpec, description="Price regime shifts (default +/-0.2%)."
    )
    volatility_scaling: ScalingRangeSpec = Field(
        default_factory=ScalingRangeSpec,
        description="Scaling of returns around their mean (default 0.8-1.2x volatility).",
    )
    time_warp: ScalingRangeSpec = Field(
        default_factory=ScalingRangeSpec,
        description="Time warping by resampling (default 0.8-1.2x speed).",
    )
    copies: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Augmented copies of the training split, in addition to the original.",
    )


class CurriculumSpec(StevieModel):
    """Curriculum over volatility regimes of the training data, easiest first."""

    enabled: bool = Field(
        default=False,
        description="Train on regimes of increasing realised volatility, stage by stage.",
    )
    stages: list[CurriculumStage] = Field(
        default_factory=lambda: list(DEFAULT_STAGES),
        min_length=1,
        description="Stages in order (unique): stable, moderate, high_volatility, turbulent, "
        "regimes of realised volatility of the training data.",
    )
    promotion: Literal["score", "steps"] = Field(
        default="score",
        description="score: promote when the mean episode score over the last windowEpisodes "
        "episodes reaches scoreThreshold; steps: promote every stepsPerStage timesteps.",
    )
    score_threshold: float = Field(
        default=0.0, description="score promotion: mean episode score needed to promote."
    )
    window_episodes: int = Field(
        default=10, ge=1, description="score promotion: episodes averaged for the score."
    )
    steps_per_stage: int | None = Field(
        default=None,
        gt=0,
        description="steps promotion: timesteps per stage (default: totalTimesteps divided "
        "evenly among the stages).",
    )

    @field_validator("stages")
    @classmethod
    def _unique(cls, value: list[CurriculumStage]) -> list[CurriculumStage]:
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            raise ValueError(f"stages must be unique (repeated: {', '.join(duplicates)})")
        return value


class WalkForwardSpec(StevieModel):
    """Walk-forward selection: K folds before the test split instead of one validation split.

    One validation split is one noisy draw, and a model chosen on it is partly chosen for its
    luck there. Each fold trains its own agent on bars before its validation window and keeps
    that agent's best checkpoint by the window's Sharpe; the run's validation score is the
    mean (or a lower confidence bound) over the folds. The test split is never seen until
    the final report.
    """

    folds: int = Field(
        default=5,
        ge=2,
        le=50,
        description="Number of folds K (>= 2). The folds re-cut the bars before the test "
        "split (data.split's validation boundary is not used; its test split is). "
        "totalTimesteps is the budget of the whole run, split evenly among the folds, so "
        "walk-forward costs what a single split does.",
    )
    scheme: Literal["anchored", "rolling"] = Field(
        default="anchored",
        description="anchored: every fold trains from the first bar (the training set grows; "
        "the last fold's agent, trained on the most data, is the run's model.zip); rolling: "
        "every fold trains on the same number of bars (trainBars), sliding forward.",
    )
    validation_bars: int | None = Field(
        default=None,
        ge=2,
        description="Bars of each fold's validation window. Default: the bars before the "
        "test split (less the gaps) cut into K + 1 equal parts, the first training set "
        "being the first part (scikit-learn's TimeSeriesSplit).",
    )
    train_bars: int | None = Field(
        default=None,
        ge=2,
        description="rolling: bars each fold trains on (default: all the first fold has); "
        "anchored: the fewest bars the first fold may train on.",
    )
    purge_bars: int | None = Field(
        default=None,
        ge=0,
        description="Bars left out between each fold's training bars and its validation "
        "window, and between the last window and the test split, so no observation window "
        "straddles a boundary. Default: env.window.",
    )
    embargo_bars: int = Field(
        default=0,
        ge=0,
        description="Bars left out between one validation window and the next (they still "
        "train later folds), so successive folds are scored on less correlated bars.",
    )
    score: Literal["mean", "lcb"] = Field(
        default="mean",
        description="Selection score over the folds' validation Sharpes (validation.sharpe "
        "of the result, which HPO optimises): mean, or lcb = mean - z x std / sqrt(K) (std "
        "over folds, ddof 1), which prefers agents that do well on every fold.",
    )
    z: float | None = Field(
        default=None,
        gt=0,
        le=5,
        description="score lcb only: standard errors below the mean (default 1: the "
        "one-standard-error rule of cross-validation; folds are not independent, so it is a "
        "penalty for inconsistency across folds, not a calibrated confidence level).",
    )

    @model_validator(mode="after")
    def _check(self) -> WalkForwardSpec:
        if self.z is not None and self.score != "lcb":
            raise ValueError(f"z applies to score lcb only (score is {self.score})")
        return self

    @property
    def lcb_z(self) -> float:
        """The z of score lcb (1 unless set)."""
        return 1.0 if self.z is None else self.z


class EvaluationSpec(StevieModel):
    """Periodic evaluation on the validation split (the best model is kept by validation
    Sharpe; the test split is evaluated once, at the end)."""

    eval_freq: int = Field(
        default=10_000,
        ge=1,
        description="Timesteps (summed over environments) between validation evaluations "
        "(with walkForward: within each fold, counted from the fold's start).",
    )
    walk_forward: WalkForwardSpec | None = Field(
        default=None,
        description="Walk-forward selection over K folds before the test split (one agent "
        "per fold; validation becomes the score over folds). Absent: one validation split.",
    )


class CheckpointSpec(StevieModel):
    """Periodic checkpoints for resuming after a crash or pod restart."""

    interval_steps: int = Field(
        default=10_000,
        ge=1,
        description="Timesteps (summed over environments) between checkpoints.",
    )
    keep: int = Field(default=3, ge=1, description="Most recent checkpoints kept.")
