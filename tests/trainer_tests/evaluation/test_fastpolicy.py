"""Greedy evaluation without SB3's predict(): the same actions, the same episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecMonitor

from stevie_api.training import TrainingRunSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import Prepared, prepare
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.episode import run_policy
from stevie_trainer.rl.agent import AgentPolicy, build_model, greedy_mlp
from support.mechanics import MECHANICS_DOC
from support.specs import template


def trained(algorithm: str, activation: str = "tanh") -> tuple[BaseAlgorithm, Prepared]:
    doc = template(algorithm=algorithm, policy={"netArch": [16, 16], "activation": activation})
    doc["env"] |= MECHANICS_DOC  # shorts and no hold: a second's training trades under them
    if algorithm == "DQN":
        del doc["ppo"]
        doc["dqn"] = {"learningStarts": 64}
    spec = TrainingRunSpec.model_validate(doc)
    prep = prepare(spec)
    env = VecTradingEnv(prep.train_market, spec.env, 4, bounds=prep.train_bounds, seed=0)
    model = build_model(spec, VecMonitor(env))
    model.learn(1024)
    return model, prep


@pytest.mark.parametrize(("algorithm", "activation"), [("PPO", "tanh"), ("DQN", "relu")])
def test_greedy_actions_and_episodes_equal_sb3_predict(algorithm: str, activation: str) -> None:
    model, prep = trained(algorithm, activation)
    policy = AgentPolicy(model)
    assert policy.mlp is not None  # Stevie's MLP policies take the compiled path
    obs_size = model.observation_space.shape[0]  # type: ignore[index]
    obs = np.random.default_rng(0).normal(size=(3000, obs_size)).astype(np.float32)
    accounts = Accounts(1, VecTradingEnv(prep.train_market, prep.spec.env, 1).params, prep.market)
    sb3, _ = model.predict(obs, deterministic=True)
    torch_path = np.concatenate([policy.act(o[None], accounts) for o in obs])
    compiled = np.array([policy.mlp.act(o) for o in obs])
    assert np.array_equal(torch_path, sb3) and np.array_equal(compiled, sb3)
    assert len(set(sb3.tolist())) > 1  # varied decisions, not a constant policy
    # Whole episodes: compiled kernel vs the Python loop over SB3's own predict().
    fast = run_policy(prep.market, prep.spec.env, prep.splits.validation, policy)
    slow_policy = AgentPolicy(model)
    slow_policy.mlp = None
    slow_policy.act = lambda o, a: np.asarray(model.predict(o, deterministic=True)[0])  # type: ignore[method-assign,assignment]
    slow = run_policy(prep.market, prep.spec.env, prep.splits.validation, slow_policy)
    assert np.array_equal(fast.equity, slow.equity) and np.array_equal(fast.ledger, slow.ledger)
    assert np.count_nonzero(np.diff(fast.ledger[:, 1])) > 0  # it traded


def test_the_compiled_copy_is_a_snapshot_of_the_weights() -> None:
    model, _ = trained("PPO")
    policy = AgentPolicy(model)
    assert policy.mlp is not None
    before = policy.mlp.weights.copy()
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.5)
    assert np.array_equal(policy.mlp.weights, before)
    policy = AgentPolicy(model)  # evaluations build a fresh one each time
    assert policy.mlp is not None
    assert not np.array_equal(policy.mlp.weights, before)


def test_an_unknown_layer_falls_back_to_torch() -> None:
    assert greedy_mlp([torch.nn.Linear(3, 2), torch.nn.Sigmoid()]) is None
