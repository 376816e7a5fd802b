"""Stable-Baselines3 agents from a TrainingRun spec, and a Policy adapter for evaluation."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from stevie_api.training import TrainingRunSpec
from stevie_trainer.sim import Accounts

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "DQN": DQN}
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


class SpecConflictError(ValueError):
    """Hyperparameters that are valid alone but not together (one line, names the fields)."""


def check_batching(spec: TrainingRunSpec) -> None:
    """PPO's minibatch must fit in one rollout (nSteps x nEnvs)."""
    if spec.algorithm != "PPO":
        return
    rollout = spec.ppo.n_steps * spec.n_envs
    if spec.ppo.batch_size > rollout:
        raise SpecConflictError(
            f"spec.ppo.batchSize ({spec.ppo.batch_size}) is larger than one rollout: "
            f"spec.ppo.nSteps x spec.nEnvs = {spec.ppo.n_steps} x {spec.n_envs} = {rollout}"
        )


def build_model(
    spec: TrainingRunSpec, venv: VecEnv, *, tensorboard_log: str | None = None
) -> BaseAlgorithm:
    check_batching(spec)
    cls = ALGORITHMS[spec.algorithm]
    kwargs: dict[str, Any] = spec.hyperparameters.to_sb3_kwargs()
    policy_kwargs = {
        "net_arch": list(spec.policy.net_arch),
        "activation_fn": ACTIVATIONS[spec.policy.activation],
    }
    return cls(
        "MlpPolicy",
        venv,
        policy_kwargs=policy_kwargs,
        seed=spec.seed,
        device=spec.device,
        tensorboard_log=tensorboard_log,
        verbose=0,
        **kwargs,
    )


def save_model(model: BaseAlgorithm) -> bytes:
    """The model as SB3's zip (policy, optimizer state, hyperparameters), in memory."""
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def load_model(
    spec: TrainingRunSpec,
    data: bytes,
    venv: VecEnv | None = None,
    *,
    overrides: dict[str, Any] | None = None,
) -> BaseAlgorithm:
    """A saved model (weights and optimizer state). ``overrides`` replace saved
    hyperparameters before SB3 rebuilds its schedules and buffers (PBT's explore step)."""
    cls = ALGORITHMS[spec.algorithm]
    return cls.load(io.BytesIO(data), env=venv, device=spec.device, **(overrides or {}))


def continuation_overrides(spec: TrainingRunSpec) -> dict[str, Any]:
    """The spec's hyperparameters, to apply to a model that goes on training in a new
    ``learn`` call (a PBT interval). SB3 anneals DQN's exploration over each ``learn`` call,
    so a continuing DQN explores at its final rate instead of restarting from 1.0."""
    kwargs = spec.hyperparameters.to_sb3_kwargs()
    if spec.algorithm == "DQN":
        kwargs["exploration_initial_eps"] = kwargs["exploration_final_eps"]
    return kwargs


class AgentPolicy:
    """A trained model as a :class:`~stevie_trainer.baselines.Policy` (greedy actions)."""

    def __init__(self, model: BaseAlgorithm, name: str = "agent") -> None:
        self.model = model
        self.name = name

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> npt.NDArray[np.int64]:
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(accounts.n)
