"""The cost rules on every path through the kernel: the batched env, the compiled evaluation
loop and the baselines (the expert acts through the env's action scheme, so it obeys them).
Shorts allowed, and no hold but the rules' own (support.mechanics)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from stevie_api.market import ExpertSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import EQUITY, L_TARGET, L_TRADED, LEDGER_COLUMNS
from stevie_trainer.env.market import MarketData, sim_params
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.baselines import make_baseline
from stevie_trainer.evaluation.episode import run_policy
from stevie_trainer.evaluation.fastpolicy import GreedyMLP, run_episode
from support.bars import bars
from support.mechanics import mechanics_spec

RULES = {"no_trade_band": 0.3, "min_hold_bars": 5, "turnover_penalty": 0.003}
SPECS = {
    "target-log": mechanics_spec(episode_length=40, positions=[-1.0, -0.5, 0.0, 0.5, 1.0], **RULES),
    "target-dsr-always": mechanics_spec(
        episode_length=40, reward="differential_sharpe", rebalance="always", **RULES
    ),
    "trade-dd-drift": mechanics_spec(
        episode_length=40,
        action_scheme="trade",
        reward="drawdown_penalized",
        trade_size=0.5,
        rebalance="drift",
        rebalance_drift=0.02,
        **RULES,
    ),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return bars(n=600, seed=21)


@pytest.mark.parametrize("name", list(SPECS))
def test_batched_env_equals_single_envs_with_the_rules_on(frame: pd.DataFrame, name: str) -> None:
    spec = SPECS[name]
    market = MarketData.from_frame(frame, spec)
    n, bounds = 5, (100, 500)
    dummy = DummyVecEnv([lambda: TradingEnv(market, spec, bounds=bounds) for _ in range(n)])
    dummy.seed(3)
    vec = VecTradingEnv(market, spec, n, bounds=bounds, seed=3)
    np.testing.assert_array_equal(dummy.reset(), vec.reset())
    rng = np.random.default_rng(4)
    held = 0
    for _ in range(300):
        actions = rng.integers(0, vec.params.n_actions, size=n)
        obs_d, rew_d, done_d, info_d = dummy.step(actions)
        obs_v, rew_v, done_v, info_v = vec.step(actions)
        np.testing.assert_array_equal(obs_d, obs_v)
        np.testing.assert_array_equal(rew_d, rew_v)
        np.testing.assert_array_equal(done_d, done_v)
        for i in np.flatnonzero(done_v):
            np.testing.assert_array_equal(
                info_d[i]["terminal_observation"], info_v[i]["terminal_observation"]
            )
        held += int(np.count_nonzero(vec.accounts.hold))
    assert held > 300  # holds were running


def random_mlp(obs_size: int, n_actions: int, seed: int) -> GreedyMLP:
    rng = np.random.default_rng(seed)
    sizes = [obs_size, 16, n_actions]
    layers = [(rng.normal(size=(b, a)), rng.normal(size=b)) for a, b in pairwise(sizes)]
    return GreedyMLP.from_layers(layers, "tanh")


@pytest.mark.parametrize("name", list(SPECS))
def test_the_compiled_evaluation_loop_obeys_the_rules(frame: pd.DataFrame, name: str) -> None:
    spec = SPECS[name]
    market = MarketData.from_frame(frame, spec)
    params = sim_params(spec)
    first, last = market.tradable((0, market.n_bars), "data")
    runs = []
    for compiled in (True, False):
        acc = Accounts(1, params, market)
        acc.reset(np.zeros(1, dtype=np.int64), np.array([first]), np.array([last]))
        mlp = random_mlp(acc.obs_size, params.n_actions, seed=5)
        if compiled:
            equity, ledger, _ = run_episode(mlp, acc, last - first)
        else:  # the same greedy actions, one Python step at a time
            path, rows, obs = [1.0], [], acc.observe()
            while not acc.dones[0]:
                obs = acc.step_observe(np.array([mlp.act(obs[0])], dtype=np.int64))
                path.append(float(acc._acct[EQUITY]))
                rows.append(acc.ledger[0].copy())
            equity, ledger = np.asarray(path), np.asarray(rows).reshape(-1, LEDGER_COLUMNS)
        runs.append((np.asarray(equity), ledger))
    (fast_eq, fast_ledger), (slow_eq, slow_ledger) = runs
    np.testing.assert_array_equal(fast_eq, slow_eq)
    np.testing.assert_array_equal(fast_ledger, slow_ledger)
    assert np.count_nonzero(fast_ledger[:, L_TRADED]) > 1


def test_the_expert_obeys_the_band_and_the_hold(frame: pd.DataFrame) -> None:
    """The expert picks targets and acts through the env's action scheme, so a refused order
    is refused for it too; buy-and-hold enters once and is unaffected."""
    k = 6
    episodes = {}
    for label, rules in (("free", {}), ("rules", {"min_hold_bars": k, "no_trade_band": 0.3})):
        spec = mechanics_spec(**rules)
        market = MarketData.from_frame(frame, spec)
        for policy in ("expert", "buy-and-hold"):
            baseline = make_baseline(policy, market.features.indicators, ExpertSpec())
            episodes[label, policy] = run_policy(market, spec, (0, market.n_bars), baseline)

    def held(label: str) -> np.ndarray:
        return np.concatenate([[0.0], episodes[label, "expert"].ledger[:, L_TARGET]])

    targets = held("rules")
    changes = np.flatnonzero(np.diff(targets)) + 1
    assert len(changes) > 3
    assert all(len(set(targets[s : s + k + 1].tolist())) == 1 for s in changes)
    assert len(changes) < np.count_nonzero(np.diff(held("free")))  # it was held back
    np.testing.assert_array_equal(
        episodes["rules", "buy-and-hold"].equity, episodes["free", "buy-and-hold"].equity
    )
