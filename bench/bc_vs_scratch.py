"""Does behaviour cloning help? PPO from BC-initialised vs random weights, same budget/seeds.

Trains two TrainingRuns on the same data (default ../shared/data/BTCUSDT_1h.csv), identical
but for behaviourCloning.enabled, in parallel processes (one core each), then prints both
test tables and, from the periodic validation evaluations, the timesteps each needed to
reach the expert's validation Sharpe (the seed's claim: BC cuts training time).

    python bench/bc_vs_scratch.py [--data URI] [--steps 98304] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"


def spec(data: str, steps: int, seed: int, bc: bool) -> dict[str, Any]:
    return {
        "data": {"uri": data},
        "env": {"episodeLength": 1000},
        "ppo": {"nSteps": 256, "batchSize": 256, "nEpochs": 4},
        "policy": {"netArch": [64, 64]},
        "totalTimesteps": steps,
        "nEnvs": 8,
        "seed": seed,
        "behaviourCloning": {"enabled": bc},
        "evaluation": {"evalFreq": 8192},
        "checkpoint": {"intervalSteps": steps},
    }


def expert_validation_sharpe(doc: dict[str, Any]) -> float:
    from stevie_api.training import TrainingRunSpec
    from stevie_trainer.env.prepare import prepare
    from stevie_trainer.evaluation.baselines import ExpertPolicy
    from stevie_trainer.evaluation.episode import run_policy

    prepared = prepare(TrainingRunSpec.model_validate(doc))
    expert = ExpertPolicy(prepared.market.features.indicators, prepared.spec.expert)
    episode = run_policy(prepared.market, prepared.spec.env, prepared.splits.validation, expert)
    return episode.performance().sharpe


def first_reaching(evaluations: list[dict[str, Any]], target: float) -> int | None:
    for e in evaluations:
        if e.get("sharpe") is not None and e["sharpe"] >= target:
            return int(e["timesteps"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--steps", type=int, default=48 * 2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-bc-bench-"))
    procs = {}
    for label, bc in (("bc", True), ("scratch", False)):
        doc = spec(args.data, args.steps, args.seed, bc)
        (root / label).mkdir(parents=True, exist_ok=True)
        spec_file = root / f"{label}.json"
        spec_file.write_text(json.dumps(doc))
        cmd = [sys.executable, "-m", "stevie_trainer", "train", "--spec", str(spec_file)]
        cmd += ["--out", str(root / label), "--name", f"PPO {label}"]
        procs[label] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for p in procs.values():
        p.wait()
    from stevie_trainer.rl.train import result_table

    target = expert_validation_sharpe(spec(args.data, args.steps, args.seed, False))
    print(f"data {args.data}, {args.steps} timesteps each, seed {args.seed}; runs in {root}")
    print(f"expert's validation Sharpe: {target:.3f}\n")
    for label in ("bc", "scratch"):
        if procs[label].returncode != 0:
            print(f"{label}: the run failed (exit {procs[label].returncode})")
            continue
        result = json.loads((root / label / "result.json").read_text())
        reached = first_reaching(result["evaluations"], target)
        val = result["validation"] or {}
        print(f"== PPO {'with BC pre-training' if label == 'bc' else 'from random weights'}")
        print(result_table(result))
        print(
            f"best validation Sharpe {val.get('sharpe')} at {result['best_timesteps']} steps; "
            f"first evaluation at or above the expert's: "
            f"{reached if reached is not None else 'never'} (evaluations every 8192 steps)"
        )
        if result.get("behaviour_cloning"):
            bc = result["behaviour_cloning"]
            print(
                f"BC: {bc['n_demos']} demos, validation accuracy {bc['validation_accuracy']:.3f} "
                f"(holding rate {bc['hold_rate']:.3f}), trade accuracy {bc['trade_accuracy']}, "
                f"TV distance {bc['tv_distance_greedy']:.4f}, {bc['seconds']:.1f} s"
            )
        print()


if __name__ == "__main__":
    main()
