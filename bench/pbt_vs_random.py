"""Does PBT beat random search at the same budget? 8 members vs 8 independent runs.

Both arms start from the SAME 8 hyperparameter draws (the population's initial sample from
the priors) and train with the same interval trainer, seeds and budget (members x intervals x
perturbationInterval timesteps each); the only difference is PBT's exploit/explore between
intervals. Each arm's best checkpoint is picked by validation fitness alone, then tested once
on the test split beside buy-and-hold, the expert and random (pbt_finish, as `stevie run`
does). PBT runs through `stevie run`'s runner (forked interval processes, 2 at a time); the
random arm runs each member's chain of intervals in 2 forked workers.

Also prints PBT's overhead account: the share of member wall time outside training.

    python bench/pbt_vs_random.py [--data URI] [--members 8] [--interval 16384]
                                  [--intervals 8] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"


def population(args: argparse.Namespace) -> dict[str, Any]:
    template = {
        "data": {"uri": args.data},
        "env": {"episodeLength": 1000},
        "ppo": {"nSteps": 256, "batchSize": 256, "nEpochs": 4},
        "policy": {"netArch": [64, 64]},
        "nEnvs": 8,
        "seed": args.seed,
    }
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "PBTPopulation",
        "metadata": {"name": "pbt-bench"},
        "spec": {
            "template": template,
            "populationSize": args.members,
            "perturbationInterval": args.interval,
            "mode": "async",
            "stopping": {"maxIntervals": args.intervals},
            "parallelism": 2,
        },
    }


def _member_chain(job: tuple[Any, int, dict[str, Any], int, str]) -> list[dict[str, Any]]:
    """One independent member: its intervals in a row, each from its own last checkpoint."""
    spec, member, params, intervals, root = job
    import os

    from stevie_trainer.pbt.member import train_interval

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # progress lines, as in stevie run's logs

    results, init = [], None
    for i in range(intervals):
        out = f"{root}/members/m{member}/i{i}"
        results.append(train_interval(spec, member, i, params, init, out, log=lambda _: None))
        init = out
    return results


def random_arm(resource: Any, root: Path) -> tuple[dict[str, Any], float]:
    """8 independent runs from the population's initial draws; summary via pbt_finish."""
    import numpy as np

    from stevie_trainer.pbt.evolution import new_population
    from stevie_trainer.pbt.finish import finish_population
    from stevie_trainer.pbt.member import warm_up

    spec = resource.spec
    # The same initial population as the operator's first plan.
    rng = np.random.default_rng([spec.template.seed, spec.population_size])
    pop = new_population("random-search", spec, rng)
    warm_up(spec)
    jobs = [(spec, m.index, m.hyperparameters, spec.stopping.max_intervals, str(root))
            for m in pop.members]  # fmt: skip
    t0 = time.monotonic()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        chains = pool.map(_member_chain, jobs, chunksize=1)
    wall = time.monotonic() - t0
    for m, chain in zip(pop.members, chains, strict=True):
        m.fitness_history = [r["fitness"] for r in chain]
        m.param_history = [dict(r["hyperparameters"]) for r in chain]
        m.checkpoint_history = [r["checkpoint"] for r in chain]
        m.checkpoint = chain[-1]["checkpoint"]
        m.intervals_done, m.status = len(chain), "done"
        pop.intervals_completed += len(chain)
    return finish_population(spec, pop, str(root), log=lambda _: None), wall


def row(label: str, doc: dict[str, Any], wall: float) -> dict[str, Any]:
    best = doc["best"]
    test = best["test"]["best member"]
    finals = [m["fitness_history"][-1] for m in doc["members"] if m["fitness_history"]]
    return {
        "arm": label,
        "best_validation_fitness": best["fitness"],
        "best_member": best["member"],
        "best_interval": best["interval"] + 1,
        "validation_sharpe": (best.get("validation") or {}).get("sharpe"),
        "test_sharpe": test.get("sharpe"),
        "test_return": test.get("total_return"),
        "test_max_drawdown": test.get("max_drawdown"),
        "test_trades": test.get("trades"),
        "mean_final_fitness": sum(finals) / len(finals),
        "exploits": doc["exploits"],
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--interval", type=int, default=16384)
    parser.add_argument("--intervals", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-pbt-bench-"))

    from stevie_api.pbt import PBTPopulation
    from stevie_operator.local.runner import run_resources
    from stevie_operator.registry import KINDS

    resource = PBTPopulation.model_validate(population(args))
    budget = args.members * args.intervals * args.interval
    print(f"data {args.data}; {args.members} members x {args.intervals} intervals x "
          f"{args.interval:,} steps = {budget:,} timesteps per arm; runs in {root}")  # fmt: skip
    t0 = time.monotonic()
    run_resources([resource], root / "pbt", KINDS, say=lambda _: None, stream=False)
    pbt_wall = time.monotonic() - t0
    pbt = json.loads((root / "pbt/default/pbtpopulations/pbt-bench/pbt_summary.json").read_text())
    rnd, rnd_wall = random_arm(resource, root / "random")
    rows = [row("PBT", pbt, pbt_wall), row("random search", rnd, rnd_wall)]
    keys = list(rows[0])[1:]
    print(f"{'':26s}" + "".join(f"{r['arm']:>16s}" for r in rows))
    for key in keys:
        cells = []
        for r in rows:
            v = r[key]
            cells.append(f"{v:>16.4f}" if isinstance(v, float) else f"{v!s:>16s}")
        print(f"{key:26s}" + "".join(cells))
    base = pbt["best"]["test"]
    for name in ("buy-and-hold", "expert", "random"):
        b = base[name]
        print(f"test {name:12s}: Sharpe {b['sharpe']:.2f}, return {b['total_return']:+.2%}, "
              f"max drawdown {b['max_drawdown']:.2%}, trades {b['trades']}")  # fmt: skip
    print("\nPBT best member's test table:\n" + pbt["best"]["table"])
    print("\nRandom search best run's test table:\n" + rnd["best"]["table"])
    over = pbt["overhead"]
    print(f"\nPBT overhead: {over['outside_training_share']:.1%} of member wall time outside "
          f"training ({over['member_wall_seconds']:.1f} s wall, {over['training_seconds']:.1f} s "
          f"in SB3 learn; inside intervals: {json.dumps(over['inside_intervals'])})")  # fmt: skip
    (root / "bench.json").write_text(json.dumps({"rows": rows, "pbt_overhead": over}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
