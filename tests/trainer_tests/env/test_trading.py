"""TradingEnv / VecTradingEnv: semantics, checkers, equivalence, accounting, episodes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from stevie_api.market import EnvSpec
from stevie_trainer.data.ohlcv import DataError
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.episode import round_trips
from support.mechanics import mechanics_spec


def random_walk(n: int = 600, seed: int = 0, gap: float = 0.002) -> pd.DataFrame:
    """OHLCV bars whose opens differ from the previous close (so fill timing matters)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, gap, n - 1))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    volume = rng.uniform(100, 200, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


# The mechanics under shorts and no hold (support.mechanics), and the defaults as they are.
SPECS = {
    "defaults": EnvSpec(episode_length=40),
    "target-log": mechanics_spec(episode_length=40),
    "target-dsr": mechanics_spec(episode_length=40, reward="differential_sharpe"),
    "trade-dd": mechanics_spec(
        episode_length=40, action_scheme="trade", reward="drawdown_penalized", trade_size=0.5
    ),
    "target-levels-volume": mechanics_spec(
        episode_length=40,
        positions=[-1.0, -0.5, 0.0, 0.5, 1.0],
        features=[
            "log_return",
            "rsi",
            "ma_fast_ratio",
            "ma_slow_ratio",
            "volatility",
            "volume_zscore",
        ],
    ),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return random_walk()


@pytest.mark.parametrize("name", list(SPECS))
def test_env_passes_gymnasium_and_sb3_checkers(frame: pd.DataFrame, name: str) -> None:
    spec = SPECS[name]
    market = MarketData.from_frame(frame, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "reset and step share an object"
        gym_check_env(TradingEnv(market, spec), skip_render_check=True)
    sb3_check_env(TradingEnv(market, spec), warn=True)


def test_observations_are_fresh_arrays_a_user_may_keep(frame: pd.DataFrame) -> None:
    spec = mechanics_spec(episode_length=40)
    env = TradingEnv(MarketData.from_frame(frame, spec), spec)
    first, _ = env.reset(seed=0)
    kept = first.copy()
    second, *_ = env.step(2)
    third, *_ = env.step(0)
    assert not np.shares_memory(first, second) and not np.shares_memory(second, third)
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(second, third)


def test_default_observation_is_104_floats(frame: pd.DataFrame) -> None:
    spec = EnvSpec()
    env = TradingEnv(MarketData.from_frame(frame, spec), spec)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (104,) == env.observation_space.shape
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("name", list(SPECS))
def test_vec_env_matches_dummy_vec_env_of_single_envs(frame: pd.DataFrame, name: str) -> None:
    """Same seeds, same actions: identical observations, rewards, dones and terminal obs."""
    spec = SPECS[name]
    market = MarketData.from_frame(frame, spec)
    n = 5
    bounds = (100, 500)
    dummy = DummyVecEnv([lambda: TradingEnv(market, spec, bounds=bounds) for _ in range(n)])
    dummy.seed(7)
    vec = VecTradingEnv(market, spec, n, bounds=bounds, seed=7)
    obs_d, obs_v = dummy.reset(), vec.reset()
    np.testing.assert_array_equal(obs_d, obs_v)
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(300):
        actions = rng.integers(0, vec.params.n_actions, size=n)
        obs_d, rew_d, done_d, info_d = dummy.step(actions)
        obs_v, rew_v, done_v, info_v = vec.step(actions)
        np.testing.assert_array_equal(obs_d, obs_v)
        np.testing.assert_allclose(rew_d, rew_v, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(done_d, done_v)
        for i in np.flatnonzero(done_v):
            episodes += 1
            np.testing.assert_array_equal(
                info_d[i]["terminal_observation"], info_v[i]["terminal_observation"]
            )
            assert info_d[i]["TimeLimit.truncated"] == info_v[i]["TimeLimit.truncated"]
    assert episodes >= 5 * n  # resets were exercised


def test_round_trip_at_constant_prices_costs_exactly_two_fills() -> None:
    n = 400
    flat = pd.DataFrame(
        {"open": 50.0, "high": 50.0, "low": 50.0, "close": 50.0},
        index=pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC"),
    )
    spec = mechanics_spec(fee_bps=10, slippage_bps=5)
    env = TradingEnv(MarketData.from_frame(flat, spec), spec, mode="eval")
    env.reset()
    long, flat_action = 2, 1
    env.step(long)
    _, _, _, _, info = env.step(flat_action)
    assert info["equity"] == pytest.approx((1 - 15e-4) ** 2, rel=1e-12)
    trades = round_trips(np.asarray(env.ledger))
    assert trades == pytest.approx([(1 - 15e-4) ** 2 - 1], rel=1e-9)


@pytest.mark.parametrize("name", list(SPECS))
def test_trade_returns_compound_to_final_equity(frame: pd.DataFrame, name: str) -> None:
    spec = SPECS[name]
    env = TradingEnv(MarketData.from_frame(frame, spec), spec, mode="eval")
    env.reset()
    rng = np.random.default_rng(5)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(int(rng.integers(0, env.params.n_actions)))
        done = term or trunc
    trades = round_trips(np.asarray(env.ledger))
    assert len(trades) > 10
    assert np.prod(1.0 + trades) == pytest.approx(info["equity"], rel=1e-9)


def test_features_use_no_future_data(frame: pd.DataFrame) -> None:
    """Features at bar t computed on data up to t equal those computed on all data."""
    spec = SPECS["target-levels-volume"]
    full = MarketData.from_frame(frame, spec).features.values
    for t in (130, 200, 333, 599):
        part = MarketData.from_frame(frame.iloc[: t + 1], spec).features.values
        np.testing.assert_array_equal(part[t], full[t])


def test_observation_is_the_past_window_plus_account_state(frame: pd.DataFrame) -> None:
    spec = mechanics_spec(window=8)
    market = MarketData.from_frame(frame, spec)
    env = TradingEnv(market, spec, mode="eval")
    obs, _ = env.reset()
    t = env.bar
    np.testing.assert_array_equal(obs[:-4], market.features.values[t - 7 : t + 1].ravel())
    np.testing.assert_array_equal(obs[-4:], [0.0, 0.0, 0.0, 0.0])
    obs, _, _, _, _ = env.step(2)  # go long
    assert obs[-4] == 1.0


def test_eval_mode_is_one_full_pass_and_train_mode_random_windows(frame: pd.DataFrame) -> None:
    spec = mechanics_spec(episode_length=50)
    market = MarketData.from_frame(frame, spec)
    bounds = (300, 500)
    ev = TradingEnv(market, spec, bounds=bounds, mode="eval")
    ev.reset(seed=1)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = ev.step(1)
        steps, done = steps + 1, term or trunc
    assert (ev.start_bar, ev.bar, steps) == (300, 499, 199)

    tr = TradingEnv(market, spec, bounds=bounds, mode="train")
    starts = set()
    for seed in range(30):
        tr.reset(seed=seed)
        starts.add(tr.start_bar)
        assert 300 <= tr.start_bar <= 499 - 50
    assert len(starts) > 10


def test_trade_scheme_respects_position_limits(frame: pd.DataFrame) -> None:
    spec = mechanics_spec(
        action_scheme="trade", trade_size=0.5, max_position=1.0, allow_short=False
    )
    env = TradingEnv(MarketData.from_frame(frame, spec), spec, mode="eval")
    env.reset()
    seen = []
    for a in [1, 1, 1, 2, 2, 2, 0]:
        _, _, _, _, info = env.step(a)
        seen.append(info["position"])
    assert seen == [0.5, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]


def test_too_few_bars_is_one_clear_error() -> None:
    spec = EnvSpec()
    market = MarketData.from_frame(random_walk(150), spec)
    with pytest.raises(DataError) as err:
        TradingEnv(market, spec, bounds=(0, 130))
    message = str(err.value)
    assert "\n" not in message and "130 bars" in message


def test_bust_terminates_the_episode() -> None:
    n = 300
    close = np.full(n, 100.0)
    close[200:] = 300.0  # a tripling that wipes out a full short
    frame = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close},
        index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"),
    )
    spec = mechanics_spec()
    env = TradingEnv(MarketData.from_frame(frame, spec), spec, mode="eval")
    env.reset()
    term = False
    while not term:
        _, reward, term, trunc, info = env.step(0)  # short
        assert not trunc
    assert info["bar"] == 200 and info["equity"] == pytest.approx(1e-6)
    assert math.isfinite(reward)


@pytest.mark.parametrize("name", list(SPECS))
def test_step_observations_equal_fresh_observations(frame: pd.DataFrame, name: str) -> None:
    """The fused step+observe pass writes exactly what observe() computes on its own."""
    spec = SPECS[name]
    venv = VecTradingEnv(MarketData.from_frame(frame, spec), spec, 16, seed=2)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.integers(0, venv.params.n_actions, size=16).astype(np.int64)
        obs = venv.accounts.step_observe(actions)
        np.testing.assert_array_equal(obs, venv.accounts.observe())
        done = np.flatnonzero(venv.accounts.dones)
        if len(done):
            venv.accounts.reset(done, venv.accounts.t[done] - 30, venv.accounts.t[done])


def test_sb3_ppo_trains_on_vec_env_through_vec_monitor(frame: pd.DataFrame) -> None:
    """VecTradingEnv is a drop-in SB3 VecEnv: PPO collects rollouts, episodes get logged."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    torch.set_num_threads(1)
    spec = EnvSpec(episode_length=20)
    venv = VecMonitor(VecTradingEnv(MarketData.from_frame(frame, spec), spec, 4, seed=0))
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8]},
        device="cpu",
    )
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    assert model.ep_info_buffer is not None
    assert len(model.ep_info_buffer) >= 4  # episodes of 20 steps finished and were recorded
    assert all(np.isfinite(info["r"]) for info in model.ep_info_buffer)
