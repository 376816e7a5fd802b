"""Behaviour cloning: expert demonstrations, pre-training into PPO's policy, then fine-tuning."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from stevie_api.market import ExpertSpec
from stevie_api.techniques import BehaviourCloningSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.data.splits import SplitBounds, split_bounds
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.baselines import ExpertPolicy
from stevie_trainer.evaluation.episode import run_policy
from stevie_trainer.rl.bc import BCReport, pretrain
from stevie_trainer.rl.demonstrations import (
    Demonstrations,
    collect_demonstrations,
    split_demonstrations,
)
from support.data import MarketFiles
from support.mechanics import mechanics_spec

SPEC = mechanics_spec(episode_length=500)  # the expert shorts; it is not held back
EXPERT = ExpertSpec()
BC_SPEC = BehaviourCloningSpec(
    enabled=True, epochs=20, learning_rate=3e-3, batch_size=128, patience=3
)
N_ENVS, STEPS, SEED = 16, 1000, 3
ARCH = {"net_arch": [32, 32]}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass(frozen=True)
class Setup:
    market: MarketData
    splits: SplitBounds
    demos: Demonstrations


@pytest.fixture(scope="module")
def setup(market: MarketFiles) -> Setup:
    """BTCUSDT hourly (37,660 bars; bundled EUR/USD hourly on a clone with no ../shared): 16,000
    expert decisions on the training split."""
    data = MarketData.from_frame(load_ohlcv(market.uri("BTCUSDT_1h.csv")), SPEC)
    splits = split_bounds(data.index)
    demos = collect_demonstrations(
        data, SPEC, EXPERT, splits.train, n_envs=N_ENVS, steps=STEPS, seed=SEED
    )
    return Setup(data, splits, demos)


def make_ppo(market: MarketData, bounds: tuple[int, int], seed: int = 0) -> PPO:
    env = VecTradingEnv(market, SPEC, 2, bounds=bounds, seed=seed)
    return PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=64,
        n_epochs=2,
        seed=seed,
        device="cpu",
        policy_kwargs=ARCH,
    )


@pytest.fixture(scope="module")
def cloned(setup: Setup) -> tuple[PPO, BCReport]:
    torch.set_num_threads(1)
    model = make_ppo(setup.market, setup.splits.train)
    return model, pretrain(model, setup.demos, BC_SPEC, seed=0)


# --------------------------------------------------------------------------- demonstrations


def test_demonstrations_have_the_agents_shapes(setup: Setup) -> None:
    demos = setup.demos
    m = N_ENVS * STEPS
    assert demos.obs.shape == (m, SPEC.observation_size)
    assert demos.obs.dtype == np.float32
    assert demos.actions.shape == (m,) and demos.actions.dtype == np.int64
    assert set(np.unique(demos.actions)) <= {0, 1, 2}
    assert demos.n_actions == 3
    assert np.isclose(demos.expert_distribution.sum(), 1.0)
    assert demos.time.min() >= 0.0 and demos.time.max() <= 1.0
    # The expert mostly keeps its position (the account features tell the network which).
    assert 0.8 < demos.holds.mean() < 1.0


def test_demonstrations_replay_the_expert_in_a_single_env(setup: Setup) -> None:
    """Env i of the batch is TradingEnv seeded seed + i: the same observations and the same
    expert decisions, across episode ends (episodes are 500 bars, the prefix 600)."""
    prefix = 600
    expert = ExpertPolicy(setup.market.features.indicators, EXPERT)
    for i in (0, 13):
        env = TradingEnv(setup.market, SPEC, bounds=setup.splits.train, mode="train")
        obs, _ = env.reset(seed=SEED + i)
        for k in range(prefix):
            action = int(expert.act(obs[None], env.accounts)[0])
            row = k * N_ENVS + i
            np.testing.assert_array_equal(setup.demos.obs[row], obs)
            assert setup.demos.actions[row] == action, f"env {i} step {k}"
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()


def test_validation_block_is_the_latest_and_purged(setup: Setup) -> None:
    demos = setup.demos
    train, val = split_demonstrations(demos, 0.2)
    assert abs(len(val) / len(demos) - 0.2) < 0.02
    assert demos.time[train].max() < demos.time[val].min() - demos.purge
    assert not set(train.tolist()) & set(val.tolist())


def test_concatenate_stacks_sets(setup: Setup) -> None:
    both = Demonstrations.concatenate([setup.demos, setup.demos])
    assert len(both) == 2 * len(setup.demos)
    np.testing.assert_allclose(both.expert_distribution, setup.demos.expert_distribution)
    with pytest.raises(ValueError, match="at least one"):
        Demonstrations.concatenate([])


# --------------------------------------------------------------------------- pre-training


def test_pretrain_imitates_the_expert(cloned: tuple[PPO, BCReport]) -> None:
    _, report = cloned
    assert report.validation_accuracy > report.majority_rate + 0.25
    assert report.validation_accuracy > 0.85
    assert report.tv_distance_greedy < 0.1
    assert report.tv_distance_sampled < 0.1
    assert report.validation_loss[report.best_epoch - 1] == report.best_validation_loss
    assert report.best_validation_loss == min(report.validation_loss)
    assert report.value_head == "untouched" and report.trained_parameters > 0
    assert report.n_train + report.n_validation <= report.n_demos
    json.dumps(report.to_dict(), allow_nan=False)


@dataclass
class Agreement:
    """Deterministic PPO policy for run_policy, scoring agreement with the expert."""

    model: PPO
    expert: ExpertPolicy
    name: str = "ppo"
    agree: list[bool] = field(default_factory=list)
    trade_agree: int = 0  # steps where both change the position, and identically
    trade_union: int = 0  # steps where either changes the position

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> npt.NDArray[np.int64]:
        action, _ = self.model.predict(obs, deterministic=True)
        action = np.asarray(action, dtype=np.int64).reshape(accounts.n)
        wanted = self.expert.act(obs, accounts)
        hold = accounts.actions_for_targets(accounts.pos)
        same = bool(action[0] == wanted[0])
        self.agree.append(same)
        if action[0] != hold[0] or wanted[0] != hold[0]:
            self.trade_union += 1
            self.trade_agree += same
        return action

    @property
    def rate(self) -> float:
        return float(np.mean(self.agree))


def test_cloned_policy_trades_like_the_expert_on_validation(
    setup: Setup, cloned: tuple[PPO, BCReport]
) -> None:
    """Backtests over the (unseen) validation split: the cloned policy holds the expert's
    position far more often than an untrained network does, and where either of them
    trades, it makes the expert's trade more often."""
    expert = ExpertPolicy(setup.market.features.indicators, EXPERT)
    bounds = setup.splits.validation
    reference = run_policy(setup.market, SPEC, bounds, expert).targets
    scores: dict[str, dict[str, float]] = {}
    models = {"bc": cloned[0], "untrained": make_ppo(setup.market, setup.splits.train)}
    for label, model in models.items():
        policy = Agreement(model, expert)
        positions = run_policy(setup.market, SPEC, bounds, policy).targets
        scores[label] = {
            "same_position": float(np.mean(positions == reference)),
            "same_action": policy.rate,
            "same_trade": policy.trade_agree / max(policy.trade_union, 1),
        }
    bc, untrained = scores["bc"], scores["untrained"]
    assert bc["same_position"] > 0.65, scores
    assert bc["same_position"] > untrained["same_position"] + 0.15, scores
    assert bc["same_action"] > max(0.8, untrained["same_action"]), scores
    assert bc["same_trade"] > 1.5 * untrained["same_trade"], scores


def test_early_stopping_restores_the_best_weights(setup: Setup) -> None:
    """Validation actions contradict the training ones, so validation loss rises as the
    network fits the training rows: training stops after `patience` worse epochs and the
    best epoch's weights come back."""
    rng = np.random.default_rng(0)
    m, d = 3000, SPEC.observation_size
    obs = rng.normal(size=(m, d)).astype(np.float32)
    rule = (obs[:, 0] > 0).astype(np.int64) + (obs[:, 1] > 0).astype(np.int64)
    when = np.linspace(0.0, 1.0, m)
    actions = np.where(when < 0.75, rule, (rule + 1) % 3).astype(np.int64)
    demos = Demonstrations(obs, actions, when, np.zeros(m, dtype=bool), n_actions=3)
    model = make_ppo(setup.market, setup.splits.train)
    spec = BehaviourCloningSpec(epochs=50, patience=2, learning_rate=3e-3, batch_size=64)
    report = pretrain(model, demos, spec, seed=0)
    assert report.stopped_early
    assert report.epochs_run == report.best_epoch + spec.patience < spec.epochs
    # The restored network has the best validation loss (recomputed through SB3's own path).
    _, val = split_demonstrations(demos, spec.validation_fraction)
    policy = model.policy
    assert isinstance(policy, ActorCriticPolicy)
    with torch.no_grad():
        dist = policy.get_distribution(torch.as_tensor(obs[val]))
        loss = -dist.log_prob(torch.as_tensor(actions[val])).mean().item()
    assert loss == pytest.approx(report.best_validation_loss, rel=1e-4)


def test_ppo_fine_tunes_the_cloned_weights(setup: Setup) -> None:
    model = make_ppo(setup.market, setup.splits.train)
    policy = model.policy
    assert isinstance(policy, ActorCriticPolicy)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    spec = BehaviourCloningSpec(epochs=3, batch_size=128)
    pretrain(model, setup.demos, spec, seed=0)
    cloned = {k: v.clone() for k, v in policy.state_dict().items()}
    assert not torch.equal(before["action_net.weight"], cloned["action_net.weight"])
    # Policy only: the critic and the value head are left as initialised.
    for key in before:
        if key.startswith(("value_net.", "mlp_extractor.value_net.")):
            assert torch.equal(before[key], cloned[key]), key
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    after = policy.state_dict()
    assert not torch.equal(cloned["action_net.weight"], after["action_net.weight"])
    assert not torch.equal(cloned["value_net.weight"], after["value_net.weight"])


# --------------------------------------------------------------------------- errors


def test_dqn_is_rejected(setup: Setup) -> None:
    env = VecTradingEnv(setup.market, SPEC, 1, bounds=setup.splits.train, seed=0)
    dqn = DQN("MlpPolicy", env, buffer_size=100, device="cpu", policy_kwargs=ARCH)
    with pytest.raises(ValueError, match="actor-critic model such as PPO; DQN"):
        pretrain(dqn, setup.demos, BC_SPEC, seed=0)


def test_demonstrations_of_another_env_spec_are_rejected(setup: Setup) -> None:
    spec = mechanics_spec(episode_length=200, window=10)
    env = VecTradingEnv(setup.market, spec, 1, bounds=setup.splits.train, seed=0)
    model = PPO("MlpPolicy", env, n_steps=64, device="cpu", policy_kwargs=ARCH)
    with pytest.raises(ValueError, match="same EnvSpec"):
        pretrain(model, setup.demos, BC_SPEC, seed=0)
