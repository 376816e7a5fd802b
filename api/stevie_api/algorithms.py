"""Algorithm hyperparameters (Stable-Baselines3 PPO and DQN), the policy network, and the
validation of hyperparameter search spaces against them (and the few env fields a search may
tune: :data:`ENV_SEARCH_PATHS`)."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from stevie_api.common import ParamSpec, ParamValue, StevieModel
from stevie_api.market import EnvSpec

__all__ = [
    "ENV_SEARCH_PATHS",
    "Algorithm",
    "DQNHyperparameters",
    "PPOHyperparameters",
    "PolicySpec",
    "check_param_space",
    "default_hpo_search_space",
    "default_pbt_mutations",
    "hyperparameter_model",
    "split_search_params",
]

Algorithm = Literal["PPO", "DQN"]


class PPOHyperparameters(StevieModel):
    """PPO hyperparameters (Stable-Baselines3 names in snake_case; defaults are SB3's)."""

    learning_rate: float = Field(default=3e-4, gt=0, le=1, description="Adam learning rate.")
    n_steps: int = Field(
        default=2048,
        ge=1,
        description="Steps collected per environment per update (the rollout is nSteps x "
        "nEnvs transitions).",
    )
    batch_size: int = Field(
        default=64, ge=2, description="Minibatch size (transitions) of each gradient step."
    )
    n_epochs: int = Field(default=10, ge=1, description="Passes over each rollout.")
    gamma: float = Field(default=0.99, ge=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(
        default=0.95, ge=0, le=1, description="GAE bias/variance trade-off (lambda)."
    )
    clip_range: float = Field(
        default=0.2, gt=0, le=1, description="PPO clipping of the probability ratio."
    )
    ent_coef: float = Field(
        default=0.01, ge=0, le=1, description="Entropy bonus coefficient in the loss."
    )
    vf_coef: float = Field(
        default=0.5, ge=0, le=10, description="Value-function coefficient in the loss."
    )
    max_grad_norm: float = Field(
        default=0.5, gt=0, description="Gradient clipping (maximum global L2 norm)."
    )

    def to_sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for stable_baselines3.PPO (snake_case SB3 names)."""
        return self.model_dump()

    def with_overrides(self, params: dict[str, Any]) -> PPOHyperparameters:
        """A validated copy with some hyperparameters replaced (snake_case keys)."""
        return PPOHyperparameters.model_validate({**self.model_dump(), **params})


class DQNHyperparameters(StevieModel):
    """DQN hyperparameters (Stable-Baselines3 names in snake_case; defaults are SB3's)."""

    learning_rate: float = Field(default=1e-4, gt=0, le=1, description="Adam learning rate.")
    buffer_size: int = Field(
        default=100_000, ge=1, description="Replay buffer capacity (transitions)."
    )
    learning_starts: int = Field(
        default=1000, ge=0, description="Steps collected before learning starts."
    )
    batch_size: int = Field(default=64, ge=1, description="Minibatch size of each gradient step.")
    tau: float = Field(
        default=1.0, gt=0, le=1, description="Soft update coefficient (1 = hard update)."
    )
    gamma: float = Field(default=0.99, ge=0, le=1, description="Discount factor.")
    train_freq: int = Field(default=4, ge=1, description="Update the model every trainFreq steps.")
    gradient_steps: int = Field(
        default=1,
        ge=-1,
        description="Gradient steps per update; -1 means as many as steps collected.",
    )
    target_update_interval: int = Field(
        default=1000, ge=1, description="Steps between target network updates."
    )
    exploration_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Fraction of training over which epsilon decays from initial to final.",
    )
    exploration_initial_eps: float = Field(
        default=1.0, ge=0, le=1, description="Initial epsilon of epsilon-greedy exploration."
    )
    exploration_final_eps: float = Field(
        default=0.05, ge=0, le=1, description="Final epsilon of epsilon-greedy exploration."
    )

    @model_validator(mode="after")
    def _check(self) -> DQNHyperparameters:
        if self.gradient_steps == 0:
            raise ValueError("gradientSteps must be >= 1, or -1 (as many as steps collected)")
        if self.exploration_final_eps > self.exploration_initial_eps:
            raise ValueError(
                f"explorationFinalEps ({self.exploration_final_eps}) must be <= "
                f"explorationInitialEps ({self.exploration_initial_eps})"
            )
        return self

    def to_sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for stable_baselines3.DQN (snake_case SB3 names)."""
        return self.model_dump()

    def with_overrides(self, params: dict[str, Any]) -> DQNHyperparameters:
        """A validated copy with some hyperparameters replaced (snake_case keys)."""
        return DQNHyperparameters.model_validate({**self.model_dump(), **params})


class PolicySpec(StevieModel):
    """The policy (and value) network: an MLP."""

    net_arch: list[int] = Field(
        default_factory=lambda: [64, 64],
        min_length=1,
        description="Hidden layer sizes of the MLP (shared shape for the policy and value "
        "networks).",
    )
    activation: Literal["tanh", "relu"] = Field(
        default="tanh", description="Activation function of the hidden layers."
    )

    @model_validator(mode="after")
    def _check(self) -> PolicySpec:
        if any(size < 1 for size in self.net_arch):
            raise ValueError(f"netArch layer sizes must be >= 1 (got {self.net_arch})")
        return self


def hyperparameter_model(
    algorithm: Algorithm,
) -> type[PPOHyperparameters] | type[DQNHyperparameters]:
    """The hyperparameter model of an algorithm."""
    return PPOHyperparameters if algorithm == "PPO" else DQNHyperparameters


def default_hpo_search_space(algorithm: Algorithm = "PPO") -> dict[str, ParamSpec]:
    """The seed's search space (PPO); a comparable one for DQN."""
    if algorithm == "DQN":
        return {
            "learning_rate": ParamSpec(type="float", low=1e-5, high=1e-2, log=True),
            "gamma": ParamSpec(type="float", low=0.9, high=0.9999),
            "batch_size": ParamSpec(type="categorical", choices=[32, 64, 128, 256]),
            "buffer_size": ParamSpec(type="categorical", choices=[10_000, 50_000, 100_000]),
            "exploration_fraction": ParamSpec(type="float", low=0.05, high=0.5),
            "target_update_interval": ParamSpec(type="categorical", choices=[500, 1000, 5000]),
        }
    return {
        "learning_rate": ParamSpec(type="float", low=1e-5, high=1e-2, log=True),
        "gamma": ParamSpec(type="float", low=0.9, high=0.9999),
        "clip_range": ParamSpec(type="float", low=0.1, high=0.4),
        "batch_size": ParamSpec(type="categorical", choices=[32, 64, 128, 256]),
        "n_steps": ParamSpec(type="categorical", choices=[1024, 2048, 4096]),
        "ent_coef": ParamSpec(type="float", low=1e-4, high=1e-1, log=True),
    }


def default_pbt_mutations(algorithm: Algorithm = "PPO") -> dict[str, ParamSpec]:
    """Default PBT hyperparameter mutations: continuous hyperparameters that can change
    mid-training without rebuilding the rollout buffer."""
    if algorithm == "DQN":
        return {
            "learning_rate": ParamSpec(type="float", low=1e-5, high=1e-2, log=True),
            "gamma": ParamSpec(type="float", low=0.9, high=0.9999),
            "exploration_final_eps": ParamSpec(type="float", low=0.01, high=0.2),
        }
    return {
        "learning_rate": ParamSpec(type="float", low=1e-5, high=1e-2, log=True),
        "ent_coef": ParamSpec(type="float", low=1e-4, high=1e-1, log=True),
        "clip_range": ParamSpec(type="float", low=0.1, high=0.4),
        "gamma": ParamSpec(type="float", low=0.9, high=0.9999),
    }


ENV_SEARCH_PATHS: dict[str, str] = {
    "env.noTradeBand": "no_trade_band",
    "env.minHoldBars": "min_hold_bars",
    "env.turnoverPenalty": "turnover_penalty",
}
"""EnvSpec fields a search space may hold, by spec path (to their field names): the
cost-aware acting rules. Only these, because they change neither the observation nor the
action space (one network fits every value, so a PBT member may change them between
intervals), and they are choices of the trader; costs and data are facts of the market,
which a search must not tune."""


def split_search_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sampled configuration as (algorithm hyperparameters, EnvSpec field updates)."""
    hyper = {k: v for k, v in params.items() if k not in ENV_SEARCH_PATHS}
    env = {ENV_SEARCH_PATHS[k]: v for k, v in params.items() if k in ENV_SEARCH_PATHS}
    return hyper, env


def check_param_space(algorithm: Algorithm, space: dict[str, ParamSpec], field: str) -> None:
    """Raise ValueError if a key is neither a hyperparameter of the algorithm nor one of
    :data:`ENV_SEARCH_PATHS`, or if a bound or choice is not a valid value for it. `field` is
    the camelCase name used in messages."""
    hyper = hyperparameter_model(algorithm)
    known = sorted(hyper.model_fields)
    for key, spec in space.items():
        model: type[BaseModel] = EnvSpec if key in ENV_SEARCH_PATHS else hyper
        name = ENV_SEARCH_PATHS.get(key, key)
        if name not in model.model_fields:
            raise ValueError(
                f"{field}: {key!r} is not a {algorithm} hyperparameter (use the snake_case "
                f"Stable-Baselines3 name: {', '.join(known)}) nor a searchable env field "
                f"({', '.join(ENV_SEARCH_PATHS)})"
            )
        annotation = model.model_fields[name].annotation
        if annotation is int and spec.type == "float":
            raise ValueError(f"{field}.{key}: {key} is an integer: use type int or categorical")
        for value in spec.candidate_values():
            _check_value(model, name, value, f"{field}.{key}")


def _check_value(model: type[BaseModel], key: str, value: ParamValue, where: str) -> None:
    checker = _field_checker(model, key)
    try:
        checker.model_validate({model.model_fields[key].alias or key: value}, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"{where}: {value!r} is not a valid {key}: {first['msg']}") from None


@cache
def _field_checker(model: type[BaseModel], key: str) -> type[BaseModel]:
    """A model with only that field (type and constraints), to check single values."""
    info = model.model_fields[key]
    fields: dict[str, Any] = {key: (info.annotation, info)}
    checker: type[BaseModel] = create_model(
        f"Check_{key}", __config__=ConfigDict(extra="forbid"), **fields
    )
    return checker
