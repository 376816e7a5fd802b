"""PBT overhead: the share of member wall time spent outside training.

Member wall time is each interval's process from launch to exit as the controller saw it;
training time is what Stable-Baselines3's ``learn`` took inside it. The rest is scheduling,
process start, loading the starting checkpoint (weights + optimizer), the validation pass
that scores the interval, and saving. Measured for `stevie run`'s launcher (interval
processes forked from a warmed-up runner) and, side by side, for fresh interpreters per
interval -- what a cluster Job pays on top (imports), before any pod scheduling.

    python bench/pbt_overhead.py [--data URI] [--intervals 4096,16384] [--members 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"


def population(data: str, interval: int, members: int, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "PBTPopulation",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "data": {"uri": data},
                "env": {"episodeLength": 1000},
                "ppo": {"nSteps": 256, "batchSize": 256, "nEpochs": 4},
                "policy": {"netArch": [64, 64]},
                "nEnvs": 8,
            },
            "populationSize": members,
            "perturbationInterval": interval,
            "stopping": {"maxIntervals": 4},
            "parallelism": 2,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--intervals", default="4096,16384")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--out", default=None)
    parser.add_argument("--launchers", default="forked,fresh", help="forked, fresh or both")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-pbt-overhead-"))

    from stevie_api.pbt import PBTPopulation
    from stevie_operator.local.runner import run_resources
    from stevie_operator.registry import KINDS

    print(f"data {args.data}; {args.members} members x 4 intervals, 2 at a time; in {root}")
    header = f"{'launcher':22s}{'interval':>10s}{'wall s':>9s}{'train s':>9s}{'outside':>9s}"
    print(header + "   inside intervals (s): setup / eval / save")
    rows = []
    for interval in (int(x) for x in args.intervals.split(",")):
        wanted = args.launchers.split(",")
        launchers = [("forked (stevie run)", False), ("fresh process (Job)", True)]
        for label, fresh in [
            (lab, f) for lab, f in launchers if ("fresh" if f else "forked") in wanted
        ]:
            name = f"pbt-{interval}-{'fresh' if fresh else 'fork'}"
            resource = PBTPopulation.model_validate(
                population(args.data, interval, args.members, name)
            )
            t0 = time.monotonic()
            run_resources([resource], root, KINDS, say=lambda _: None, fork=not fresh, stream=False)
            total = time.monotonic() - t0
            summary = root / "default" / "pbtpopulations" / name / "pbt_summary.json"
            over = json.loads(summary.read_text())["overhead"]
            inside = over["inside_intervals"]
            print(f"{label:22s}{interval:>10,d}{over['member_wall_seconds']:>9.1f}"
                  f"{over['training_seconds']:>9.1f}{over['outside_training_share']:>9.1%}   "
                  f"{inside['setup_seconds']:.2f} / {inside['eval_seconds']:.2f} / "
                  f"{inside['save_seconds']:.2f}")  # fmt: skip
            rows.append({"launcher": label, "interval": interval, "population_seconds": total,
                         **over})  # fmt: skip
    (root / "overhead.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
