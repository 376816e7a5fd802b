"""PPO training throughput: VecTradingEnv (n_envs=64) vs DummyVecEnv over gym-anytrading.

Both sides train SB3 PPO with the same hyperparameters and network on the same data in one
run; reports env-steps per second (collection + updates), the ratio, and peak memory (RSS
high-water mark of a child process per side, so neither inherits the other's peak).

    python bench/train_throughput.py [--data URI] [--steps 65536]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"
BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
# One set of PPO hyperparameters for both sides (rollout of 2048 transitions per update).
HYPER: dict[str, Any] = {"batch_size": 256, "n_epochs": 4, "learning_rate": 3e-4, "gamma": 0.99}
ROLLOUT = 2048


def run_side(side: str, data: str, steps: int) -> dict[str, float]:
    import gym_anytrading  # noqa: F401
    import gymnasium as gym
    import pandas as pd
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

    from stevie_api.market import EnvSpec
    from stevie_trainer.data.ohlcv import load_ohlcv
    from stevie_trainer.env.market import MarketData
    from stevie_trainer.env.vec import VecTradingEnv

    torch.set_num_threads(1)
    frame = load_ohlcv(data)
    spec = EnvSpec()
    venv: VecEnv
    if side == "stevie":
        n_envs = 64
        market = MarketData.from_frame(frame, spec)
        venv = VecTradingEnv(market, spec, n_envs, seed=0)
    else:
        n_envs = 1
        df = pd.DataFrame({"Close": frame["close"].to_numpy()})
        window = spec.window

        def make() -> gym.Env:
            return gym.make("stocks-v0", df=df, window_size=window, frame_bound=(window, len(df)))

        venv = DummyVecEnv([make])
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=ROLLOUT // n_envs,
        policy_kwargs={"net_arch": [64, 64]},
        seed=0,
        device="cpu",
        verbose=0,
        **HYPER,
    )
    model.learn(ROLLOUT)  # warm-up: numba compilation, torch allocations
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"steps_per_second": steps / seconds, "seconds": seconds, "peak_rss_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED) if SHARED.exists() else BUNDLED)
    parser.add_argument("--steps", type=int, default=16 * ROLLOUT)
    parser.add_argument("--side", choices=["stevie", "anytrading"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.data, args.steps)))
        return
    results = {}
    for side in ("anytrading", "stevie"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--side",
                side,
                "--data",
                args.data,
                "--steps",
                str(args.steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"data: {args.data}; PPO {HYPER}, rollout {ROLLOUT} transitions, net [64, 64], "
        f"{args.steps} timed steps per side"
    )
    print(f"{'side':<44}{'steps/s':>10}{'peak RSS MiB':>14}")
    labels = {
        "anytrading": "DummyVecEnv(gym-anytrading stocks-v0), n=1",
        "stevie": "VecTradingEnv, n_envs=64",
    }
    for side, r in results.items():
        print(f"{labels[side]:<44}{r['steps_per_second']:>10,.0f}{r['peak_rss_mib']:>14,.0f}")
    ratio = results["stevie"]["steps_per_second"] / results["anytrading"]["steps_per_second"]
    verdict = "meets" if ratio >= 2 else "MISSES"
    print(f"ratio VecTradingEnv / DummyVecEnv = {ratio:.2f}x ({verdict} the 2x target)")


if __name__ == "__main__":
    main()
