"""Environment throughput: TradingEnv, VecTradingEnv at several N, gym-anytrading's stocks-v0.

All on the same data in one run; prints steps per second and the ratio to gym-anytrading's
single environment (the target: VecTradingEnv at N=1024 >= 100x).

    python bench/env_throughput.py [--data URI] [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import gym_anytrading  # noqa: F401  (registers stocks-v0)
import gymnasium as gym
import numpy as np

from stevie_api.market import EnvSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.env.vec import VecTradingEnv

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"
BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def timed(step: Callable[[], int], seconds: float) -> float:
    """Env-steps per second of ``step`` (which returns how many env-steps it made)."""
    for _ in range(50):  # warm-up (numba compilation, caches)
        step()
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            n += step()
    return n / elapsed


def bench_anytrading(frame_close: np.ndarray, window: int, seconds: float) -> float:
    import pandas as pd

    df = pd.DataFrame({"Close": frame_close})
    # gym.make wraps it in gymnasium's passive checker, which warns that gym-anytrading's
    # reset and step return one shared observation buffer (its defect, not ours: a test
    # checks that TradingEnv returns fresh arrays). Said once here instead of as a warning.
    print("note: gym-anytrading reuses its observation buffer (gymnasium's checker warns)")
    warnings.filterwarnings("ignore", message=".*share an object", category=UserWarning)
    env = gym.make("stocks-v0", df=df, window_size=window, frame_bound=(window, len(df)))
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=1 << 16)
    k = 0

    def step() -> int:
        nonlocal k
        _, _, term, trunc, _ = env.step(int(actions[k & 0xFFFF]))
        k += 1
        if term or trunc:
            env.reset()
        return 1

    return timed(step, seconds)


def bench_single(market: MarketData, spec: EnvSpec, seconds: float) -> float:
    env = TradingEnv(market, spec, mode="train")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, size=1 << 16)
    k = 0

    def step() -> int:
        nonlocal k
        _, _, term, trunc, _ = env.step(actions[k & 0xFFFF])
        k += 1
        if term or trunc:
            env.reset()
        return 1

    return timed(step, seconds)


def bench_vec(market: MarketData, spec: EnvSpec, n: int, seconds: float) -> float:
    venv = VecTradingEnv(market, spec, n, mode="train", seed=0)
    venv.reset()
    actions = np.random.default_rng(0).integers(0, 3, size=(64, n))
    k = 0

    def step() -> int:
        nonlocal k
        venv.step(actions[k & 63])
        k += 1
        return n

    return timed(step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED) if SHARED.exists() else BUNDLED)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    frame = load_ohlcv(args.data)
    spec = EnvSpec()
    market = MarketData.from_frame(frame, spec, name=Path(args.data).name)
    print(f"data: {args.data} ({market.n_bars} bars), observation {spec.observation_size} floats")
    rows: list[tuple[str, float]] = [
        (
            "gym-anytrading stocks-v0 (gym.make)",
            bench_anytrading(market.close, spec.window, args.seconds),
        ),
        ("TradingEnv", bench_single(market, spec, args.seconds)),
    ]
    for n in (1, 64, 256, 1024):
        rows.append((f"VecTradingEnv N={n}", bench_vec(market, spec, n, args.seconds)))
    base = rows[0][1]
    print(f"{'environment':<38}{'steps/s':>14}{'x anytrading':>14}")
    for name, sps in rows:
        print(f"{name:<38}{sps:>14,.0f}{sps / base:>14.1f}")
    ratio = rows[-1][1] / base
    verdict = "meets" if ratio >= 100 else "MISSES"
    print(f"VecTradingEnv N=1024 / gym-anytrading = {ratio:.1f}x ({verdict} the 100x target)")


if __name__ == "__main__":
    main()
