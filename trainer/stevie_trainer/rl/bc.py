"""Behaviour cloning: pre-train the PPO policy network to imitate the RSI/MA expert.

:func:`~.demonstrations.collect_demonstrations` runs the expert on a :class:`VecTradingEnv`
over the training split (random episode windows, like PPO's own rollouts) and records what
the agent would see and what the expert did: the full observation, account features
included (the expert's action depends on its position, stop loss and take profit), and the
expert's action.

:func:`pretrain` then fits THE SAME network PPO fine-tunes afterwards (``model.policy``:
features extractor, actor MLP and ``action_net``) by minimising the cross-entropy of the
expert's actions (``-log pi(a_expert | obs)``) with its own Adam optimiser, minibatches, a
held-out validation block and early stopping that restores the best weights.

Choices:

- Policy only: the value head (``value_net`` and the critic MLP) is left as initialised.
  Fitting it would need returns of the expert's policy, which are not PPO's own, and PPO's
  first rollouts re-fit the critic anyway. The only parameters shared with the critic are
  those of a shared features extractor (SB3's default ``FlattenExtractor`` has none).
- PPO's optimiser (``model.policy.optimizer``) is not touched: BC uses a separate Adam.
- Validation is the most recent demonstrations by bar (``validationFraction`` of them),
  with the observation window before it purged from training, so overlapping windows of
  neighbouring bars cannot leak between the two sets.
- "Sampled" action distribution is the expected one (the mean of the policy's action
  probabilities), which is what sampling converges to, without sampling noise.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from torch.nn import functional

from stevie_api.techniques import BehaviourCloningSpec
from stevie_trainer.rl.demonstrations import (
    Demonstrations,
    action_distribution,
    split_demonstrations,
)

__all__ = ["BCReport", "pretrain", "total_variation"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class BCReport:
    """What behaviour cloning achieved (validation figures are those of the restored best)."""

    n_demos: int
    n_train: int
    n_validation: int
    epochs_run: int
    best_epoch: int  # 1-based
    stopped_early: bool
    train_loss: list[float] = field(default_factory=list)  # per epoch
    validation_loss: list[float] = field(default_factory=list)  # per epoch
    validation_accuracy_per_epoch: list[float] = field(default_factory=list)
    best_validation_loss: float = math.nan
    validation_accuracy: float = math.nan  # greedy action == expert action
    majority_rate: float = math.nan  # share of the expert's most frequent validation action
    hold_rate: float = math.nan  # share of validation rows where the expert keeps its position
    trade_accuracy: float = math.nan  # accuracy where the expert changes its position
    validation_trades: int = 0
    expert_distribution: list[float] = field(default_factory=list)
    policy_greedy_distribution: list[float] = field(default_factory=list)
    policy_sampled_distribution: list[float] = field(default_factory=list)
    tv_distance_greedy: float = math.nan
    tv_distance_sampled: float = math.nan
    trained_parameters: int = 0
    value_head: str = "untouched"
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats become None."""
        return {k: _json_safe(v) for k, v in asdict(self).items()}


def pretrain(
    model: BaseAlgorithm,
    demos: Demonstrations,
    spec: BehaviourCloningSpec,
    *,
    seed: int,
) -> BCReport:
    """Fit ``model.policy``'s actor to the expert's actions; return the BC metrics.

    ``model`` must be an on-policy algorithm with an ``ActorCriticPolicy`` over a discrete
    action space (PPO, A2C); anything else (DQN) is a ValueError.
    """
    started = time.perf_counter()
    policy = _actor_critic(model, demos)
    train_idx, val_idx = split_demonstrations(demos, spec.validation_fraction)
    device = policy.device
    obs = torch.as_tensor(demos.obs, device=device)
    actions = torch.as_tensor(demos.actions, device=device)
    params = _actor_parameters(policy)
    optimizer = torch.optim.Adam(params, lr=spec.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    train_t = torch.as_tensor(train_idx)
    report = BCReport(
        n_demos=len(demos),
        n_train=len(train_idx),
        n_validation=len(val_idx),
        epochs_run=0,
        best_epoch=0,
        stopped_early=False,
        trained_parameters=sum(p.numel() for p in params),
    )
    best_state = copy.deepcopy(policy.state_dict())
    best_loss = math.inf
    was_training = policy.training
    try:
        for epoch in range(1, spec.epochs + 1):
            report.train_loss.append(_epoch(policy, optimizer, obs, actions, train_t, gen, spec))
            val_loss, val_acc = _evaluate(policy, obs, actions, val_idx, spec.batch_size)
            report.validation_loss.append(val_loss)
            report.validation_accuracy_per_epoch.append(val_acc)
            report.epochs_run = epoch
            if val_loss < best_loss:
                best_loss, report.best_epoch = val_loss, epoch
                best_state = copy.deepcopy(policy.state_dict())
            elif epoch - report.best_epoch >= spec.patience:
                report.stopped_early = epoch < spec.epochs
                break
        policy.load_state_dict(best_state)
    finally:
        policy.set_training_mode(was_training)
    _fill_validation_metrics(report, policy, demos, obs, val_idx, spec.batch_size)
    report.best_validation_loss = best_loss
    report.seconds = time.perf_counter() - started
    return report


def _epoch(
    policy: ActorCriticPolicy,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    train_rows: torch.Tensor,
    gen: torch.Generator,
    spec: BehaviourCloningSpec,
) -> float:
    """One epoch of minibatch cross-entropy over ``train_rows`` (shuffled by ``gen``); the
    mean training loss."""
    policy.set_training_mode(True)
    total = 0.0
    for batch in torch.split(torch.randperm(len(train_rows), generator=gen), spec.batch_size):
        rows = train_rows[batch].to(policy.device)
        loss = functional.cross_entropy(_logits(policy, obs[rows]), actions[rows])
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        total += float(loss.item()) * len(rows)
    return total / len(train_rows)


def _actor_critic(model: BaseAlgorithm, demos: Demonstrations) -> ActorCriticPolicy:
    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy):
        raise ValueError(
            f"behaviour cloning needs an on-policy actor-critic model such as PPO; "
            f"{type(model).__name__} has a {type(policy).__name__}"
        )
    space = policy.action_space
    if not isinstance(space, gym.spaces.Discrete) or int(space.n) != demos.n_actions:
        raise ValueError(
            f"the model's action space {space} does not match the demonstrations' "
            f"{demos.n_actions} discrete actions"
        )
    shape = policy.observation_space.shape
    if shape != demos.obs.shape[1:]:
        raise ValueError(
            f"the model observes shape {shape} but the demonstrations have "
            f"{demos.obs.shape[1:]}: were they collected with the same EnvSpec?"
        )
    return policy


def _actor_parameters(policy: ActorCriticPolicy) -> list[torch.nn.Parameter]:
    """Parameters on the path from observation to action logits (no critic, no value head)."""
    modules = (policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net)
    return [p for module in modules for p in module.parameters() if p.requires_grad]


def _logits(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
    """Action logits; the same path as ``policy.get_distribution`` takes."""
    pre = preprocess_obs(obs, policy.observation_space, normalize_images=policy.normalize_images)
    assert isinstance(pre, torch.Tensor)
    features = policy.pi_features_extractor(pre)
    logits: torch.Tensor = policy.action_net(policy.mlp_extractor.forward_actor(features))
    return logits


@torch.no_grad()
def _evaluate(
    policy: ActorCriticPolicy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    idx: I64,
    batch_size: int,
) -> tuple[float, float]:
    policy.set_training_mode(False)
    loss, correct = 0.0, 0
    for rows in torch.split(torch.as_tensor(idx, device=obs.device), max(batch_size, 4096)):
        logits = _logits(policy, obs[rows])
        loss += float(functional.cross_entropy(logits, actions[rows], reduction="sum").item())
        correct += int((logits.argmax(dim=1) == actions[rows]).sum().item())
    return loss / len(idx), correct / len(idx)


@torch.no_grad()
def _fill_validation_metrics(
    report: BCReport,
    policy: ActorCriticPolicy,
    demos: Demonstrations,
    obs: torch.Tensor,
    val_idx: I64,
    batch_size: int,
) -> None:
    was = policy.training
    policy.set_training_mode(False)
    probs_parts = []
    for rows in torch.split(torch.as_tensor(val_idx, device=obs.device), max(batch_size, 4096)):
        probs_parts.append(torch.softmax(_logits(policy, obs[rows]), dim=1).cpu().numpy())
    policy.set_training_mode(was)
    probs = np.concatenate(probs_parts).astype(np.float64)
    greedy = probs.argmax(axis=1)
    expert = demos.actions[val_idx]
    trades = ~demos.holds[val_idx]
    n = demos.n_actions
    expert_dist = action_distribution(expert, n)
    greedy_dist = action_distribution(greedy, n)
    sampled_dist = probs.mean(axis=0)
    report.validation_accuracy = float(np.mean(greedy == expert))
    report.majority_rate = float(expert_dist.max())
    report.validation_trades = int(trades.sum())
    report.hold_rate = float(1.0 - np.mean(trades))
    if trades.any():
        report.trade_accuracy = float(np.mean(greedy[trades] == expert[trades]))
    report.expert_distribution = expert_dist.tolist()
    report.policy_greedy_distribution = greedy_dist.tolist()
    report.policy_sampled_distribution = sampled_dist.tolist()
    report.tv_distance_greedy = total_variation(expert_dist, greedy_dist)
    report.tv_distance_sampled = total_variation(expert_dist, sampled_dist)


def total_variation(p: F64, q: F64) -> float:
    """Total variation distance between two distributions over the same actions (0..1)."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
