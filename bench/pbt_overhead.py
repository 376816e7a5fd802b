"""PBT overhead: the share of member wall time spent outside training.

Member wall time is each interval's process from launch to exit as the controller saw it;
training time is what Stable-Baselines3's ``learn`` took inside it. The rest is scheduling,
process start, loading the starting checkpoint (weights + optimizer), the validation pass
that scores the interval, and saving. Measured for `stevie run`'s launcher (interval
processes forked from a warmed-up runner) and, side by side, for fresh interpreters per
interval -- what a cluster Job pays on top (imports), before any pod scheduling.

    python bench/pbt_overhead.py [--data URI] [--intervals 4096,16384] [--members 4]

``--tree LABEL=PATH`` (repeatable) measures instead what a cluster pays, per source tree
side by side: one member's chain of ``--chain`` (4) intervals of ``--interval`` (16,384)
steps, each in a fresh interpreter running exactly the interval Job's command (``python -m
stevie_trainer pbt-interval --population-spec F --member 0 --interval I [--init PREV] --out
DIR``, with PYTHONPATH=<tree>/api:<tree>/trainer:<tree>/operator and OMP_NUM_THREADS=1, as
the image sets). Each interval's wall time (process start to exit) is split into training
(SB3's ``learn``; in a tree whose pods compile the kernels, the step kernel's compilation
falls inside it, at the first step) and overhead: start (interpreter, imports, spec; until
the interval's own clock starts), setup (data, env, model, loading the starting checkpoint),
evaluation (the validation pass that scores it) and saving. numba cache (``--cache``):
``pod`` gives every interval an empty NUMBA_CACHE_DIR, as a pod's /tmp emptyDir is, seeded
from a cache the tree bakes once (``python -m stevie_trainer.rl.bake``, as its image does)
when the tree has one; ``warm`` gives each tree one cache directory that an uncounted
interval fills first.

    python bench/pbt_overhead.py --tree old=/tmp/cold-old --tree new=. [--chain 4]
        [--interval 16384] [--cache pod]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
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


def _tree_env(tree: str, cache: str, seed: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(Path(tree) / p) for p in ("api", "trainer", "operator"))
    env |= {"OMP_NUM_THREADS": "1", "STEVIE_METRICS_PORT": "0", "NUMBA_CACHE_DIR": cache}
    env.pop("STEVIE_NUMBA_CACHE_SEED", None)
    if seed is not None:
        env["STEVIE_NUMBA_CACHE_SEED"] = seed
    return env


def _bake(tree: str, scratch: Path, label: str) -> str | None:
    """The tree's baked numba cache (as its image holds it), or None if it cannot bake."""
    if not (Path(tree) / "trainer" / "stevie_trainer" / "rl" / "bake.py").exists():
        return None
    seed = scratch / f"seed-{label}"
    env = _tree_env(tree, str(seed), None)
    subprocess.run([sys.executable, "-m", "stevie_trainer.rl.bake"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return str(seed)


def _chain(tree: str, label: str, pop_file: Path, args: argparse.Namespace, scratch: Path
           ) -> list[dict[str, float]]:  # fmt: skip
    """One member's intervals, each a fresh ``python -m stevie_trainer pbt-interval``."""
    seed = _bake(tree, scratch, label) if args.cache == "pod" else None
    shared = scratch / f"cache-{label}"
    rows, init = [], None
    for interval in range(-1 if args.cache == "warm" else 0, args.chain):
        out = scratch / label / f"i{interval}"
        argv = [sys.executable, "-m", "stevie_trainer", "pbt-interval", "--population-spec",
                str(pop_file), "--member", "0", "--interval", str(max(interval, 0)),
                "--hyperparameters-json", "{}", "--out", str(out)]  # fmt: skip
        if init is not None:
            argv += ["--init", init]
        cache = str(shared) if args.cache == "warm" else tempfile.mkdtemp(dir=scratch)
        t0 = time.monotonic()
        env = _tree_env(tree, cache, seed)
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label} interval {interval} failed:\n{done.stderr[-3000:]}")
        wall = time.monotonic() - t0
        if interval < 0:
            continue  # the warm-up interval that fills the shared cache
        timings = json.loads((out / "result.json").read_text())["timings"]
        rows.append({"wall": wall, "start": wall - timings["total_seconds"],
                     "overhead": wall - timings["train_seconds"], **timings})  # fmt: skip
        init = str(out)
    return rows


def trees_main(args: argparse.Namespace) -> None:
    """Fresh interpreters per interval, per tree side by side (see the module docstring)."""
    trees = dict(t.split("=", 1) for t in args.tree)
    scratch = Path(args.out or tempfile.mkdtemp(prefix="stevie-pbt-overhead-"))
    doc = population(args.data, args.interval, 2, "pbt-overhead")  # member 0 of (at least) 2
    pop_file = scratch / "population-spec.json"
    pop_file.write_text(json.dumps(doc))
    print(f"data {args.data}; one member, {args.chain} intervals of {args.interval:,} steps, "
          f"each a fresh interpreter; numba cache: {args.cache}; in {scratch}")  # fmt: skip
    results = {label: _chain(tree, label, pop_file, args, scratch) for label, tree in trees.items()}
    keys = [("wall (process start to exit)", "wall"), ("  training (learn)", "train_seconds"),
            ("  overhead (wall - training)", "overhead"),
            ("  overhead: start (imports, spec)", "start"),
            ("            setup (data, env, model, checkpoint)", "setup_seconds"),
            ("            evaluation (validation pass)", "eval_seconds"),
            ("            save (model, state, result)", "save_seconds")]  # fmt: skip
    print(f"{'seconds per interval, median':52s}" + "".join(f"{t:>10s}" for t in trees))
    for label, key in keys:
        print(f"{label:52s}" + "".join(f"{median(r[key] for r in results[t]):>10.2f}"
                                       for t in trees))  # fmt: skip
    print(f"{'  overhead share of wall (median)':52s}" + "".join(
        f"{median(1 - r['train_seconds'] / r['wall'] for r in results[t]):>10.1%}"
        for t in trees))  # fmt: skip
    print("per interval (wall / training): " + "; ".join(
        f"{t}: " + ", ".join(f"{r['wall']:.1f}/{r['train_seconds']:.1f}" for r in results[t])
        for t in trees))  # fmt: skip
    (scratch / "overhead-trees.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--intervals", default="4096,16384")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--out", default=None)
    parser.add_argument("--launchers", default="forked,fresh", help="forked, fresh or both")
    parser.add_argument("--tree", action="append", default=[], help="LABEL=PATH (see above)")
    parser.add_argument("--chain", type=int, default=4, help="--tree: intervals of the member")
    parser.add_argument("--interval", type=int, default=16384, help="--tree: steps per interval")
    parser.add_argument("--cache", choices=("pod", "warm"), default="pod", help="--tree: numba")
    args = parser.parse_args()
    if args.tree:
        trees_main(args)
        return
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
