"""Stable-Baselines3 agents from a TrainingRun spec, and a Policy adapter for evaluation."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecEnv

from stevie_api.training import TrainingRunSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.episode import Episode, run_policy
from stevie_trainer.evaluation.fastpolicy import GreedyMLP
from stevie_trainer.evaluation.performance import Performance, returns_from_equity
from stevie_trainer.evaluation.pooled import as_performance, pool_metrics

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


Layer = Callable[[torch.Tensor], torch.Tensor]


def _layers(modules: list[torch.nn.Module]) -> list[Layer]:
    """The forward pass of a Sequential-like stack as plain torch calls (the same operations
    as the modules' own forward, without nn.Module's per-call bookkeeping)."""
    found: list[Layer] = []
    for module in modules:
        if isinstance(module, torch.nn.Sequential):
            found += _layers(list(module))
        elif isinstance(module, torch.nn.Linear):
            found.append(_linear(module))
        elif isinstance(module, torch.nn.Tanh):
            found.append(torch.tanh)
        elif isinstance(module, torch.nn.ReLU):
            found.append(torch.relu)
        else:
            found.append(module)
    return found


def _linear(module: torch.nn.Linear) -> Layer:
    weight, bias = module.weight, module.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, weight, bias)

    forward.module = module  # type: ignore[attr-defined]
    return forward


def greedy_mlp(layers: list[Layer]) -> GreedyMLP | None:
    """The greedy forward pass as a compiled :class:`GreedyMLP` (a copy of the weights), when
    ``layers`` are Linear layers with one kind of activation between them (the MLP policies
    Stevie builds); else None and evaluation calls the torch layers."""
    linears: list[tuple[Any, Any]] = []
    kinds = set()
    for layer in layers:
        module = getattr(layer, "module", None)
        if isinstance(module, torch.nn.Linear):
            bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
            linears.append((module.weight.detach().cpu().numpy(), bias.detach().cpu().numpy()))
        elif layer is torch.tanh:
            kinds.add("tanh")
        elif layer is torch.relu:
            kinds.add("relu")
        elif not isinstance(layer, torch.nn.Flatten | FlattenExtractor):
            return None
    if not linears or len(kinds) > 1 or len(linears) - 1 != _activations(layers):
        return None
    return GreedyMLP.from_layers(linears, kinds.pop() if kinds else "tanh")


def _activations(layers: list[Layer]) -> int:
    return sum(layer is torch.tanh or layer is torch.relu for layer in layers)


class AgentPolicy:
    """A trained model as a :class:`~stevie_trainer.evaluation.baselines.Policy` (greedy actions).

    Evaluation steps one bar at a time, so per-call overhead decides its speed: SB3's
    ``predict`` (~180 us a call: numpy/tensor conversions, a Categorical distribution) is
    replaced by the network's own layers called directly (~20 us): the greedy action of a PPO
    policy is the argmax of its action logits, of a DQN the argmax of its Q-values -- what
    ``predict(deterministic=True)`` returns, computed by the same torch operations on the
    live parameters (a test checks the actions are identical).
    """

    def __init__(self, model: BaseAlgorithm, name: str = "agent") -> None:
        self.model = model
        self.name = name
        policy: Any = model.policy
        if isinstance(model, PPO):
            stack = [policy.pi_features_extractor, policy.mlp_extractor.policy_net]
            self.layers = _layers([*stack, policy.action_net])
        else:
            self.layers = _layers([policy.q_net.features_extractor, policy.q_net.q_net])
        self.device = policy.device
        self.mlp = greedy_mlp(self.layers)

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> npt.NDArray[np.int64]:
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            for layer in self.layers:
                x = layer(x)
            actions = x.argmax(dim=1).cpu().numpy()
        return np.asarray(actions, dtype=np.int64).reshape(accounts.n)


def validation_episode(prepared: Prepared, model: BaseAlgorithm) -> Episode:
    """The model's greedy actions over the validation split, in the simulator: the evidence
    every model selection uses (best checkpoint, HPO objective, PBT fitness).

    One market's: a multi-market run is refused (it has one episode per market; see
    :func:`validation_performance`), so no selection silently reads its first market only.
    """
    if prepared.parts:
        raise ValueError(
            "this selection reads one market's validation split; data.markets is not "
            "supported here yet"
        )
    return run_policy(
        prepared.market,
        prepared.spec.env,
        prepared.splits.validation,
        AgentPolicy(model),
        split_name="validation split",
    )


def validation_performance(
    prepared: Prepared, model: BaseAlgorithm
) -> tuple[Performance, dict[str, dict[str, float | int | None]]]:
    """The validation performance model selection reads, and the per-market metrics.

    One market: its validation episode, and no per-market metrics. Several: the pooled
    performance (:mod:`~stevie_trainer.evaluation.pooled`: its Sharpe is the mean of the
    per-market Sharpes) and each market's metrics by name.
    """
    perf, per_market, _ = validation_pass(prepared, model)
    return perf, per_market


def validation_pass(
    prepared: Prepared, model: BaseAlgorithm
) -> tuple[Performance, dict[str, dict[str, float | int | None]], list[Episode]]:
    """:func:`validation_performance` and the episodes it read: the one market's, or each
    market's in the spec's order (one greedy pass a market)."""
    if not prepared.parts:
        episode = validation_episode(prepared, model)
        return episode.performance(), {}, [episode]
    episodes = [validation_episode(part, model) for part in prepared.parts]
    per_market = {
        part.market.name: episode.performance().to_dict()
        for part, episode in zip(prepared.parts, episodes, strict=True)
    }
    return as_performance(pool_metrics(per_market)), per_market, episodes


def joined_returns(episodes: list[Episode]) -> npt.NDArray[np.float64]:
    """The episodes' per-bar returns end to end (several markets: in the spec's order):
    the series the Deflated Sharpe Ratio and PBO read (``validation_returns.npy``)."""
    return np.concatenate([returns_from_equity(e.equity) for e in episodes])
