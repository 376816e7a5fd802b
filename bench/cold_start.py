"""Trainer cold start: process start to the first training step, in fresh interpreters.

Every PBT interval and HPO trial Job pays it: the pod runs ``python -m stevie_trainer
<command> ...`` in a new interpreter. Measured here the same way, for one or more source
trees side by side (``--tree old=/tmp/cold-old --tree new=.``: each runs with
PYTHONPATH=<tree>/api:<tree>/trainer:<tree>/operator), interleaved run by run, median of
``--runs`` (5). Each run is stopped right after its first environment step inside
Stable-Baselines3's ``learn`` (the first ``on_step`` of its callbacks).

Breakdown (exclusive times: an import or phase nested in another is counted once, in the
innermost): interpreter start, the trainer's own modules and the API models, each heavy
import, numba kernels (loaded from the cache, or compiled on a miss), data preparation,
environment and model construction, and the rest. ``entry import`` is a separate fresh
interpreter that only imports the CLI entry (``stevie_trainer.__main__``).

numba cache: ``pod`` (the default) is what a trainer pod pays: every run gets an empty
NUMBA_CACHE_DIR (the pod's /tmp emptyDir) and, when the tree can bake one
(``python -m stevie_trainer.rl.bake``, as its image does), STEVIE_NUMBA_CACHE_SEED pointing to
its baked cache; a tree without one compiles every kernel, as its image's pods did. ``warm``
gives each tree one NUMBA_CACHE_DIR filled by an uncounted run first (a developer's machine);
``empty`` gives every run an empty one and no seed. The probe also reports the process's CPU
seconds, steadier than wall time on a busy machine.

    python bench/cold_start.py --tree old=/tmp/cold-old --tree new=. [--runs 5]
        [--commands train,pbt-interval] [--cache pod,warm,empty]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Runs the trainer in each measured interpreter (stdlib only, so it is in place first).
PROBE = Path(__file__).resolve().with_name("_cold_probe.py")
ROWS = (
    ("interpreter start", "spawn"),
    ("stevie entry + API models", "import stevie_api"),
    ("", "import stevie_trainer"),
    ("", "import stevie_trainer.__main__"),
    *(
        ("", f"import stevie_api.{m}")
        for m in ("training", "pbt", "hpo", "ensemble", "kinds", "loader", "crd")
    ),
    ("pydantic", "import pydantic"),
    ("torch", "import torch"),
    ("torch._dynamo + sympy (Adam's first call)", "import torch._dynamo"),
    ("", "import sympy"),
    ("stable-baselines3", "import stable_baselines3"),
    ("numba (import)", "import numba"),
    ("numba kernels (cache load / compile)", "numba"),
    ("pandas + pyarrow", "import pandas"),
    ("", "import pyarrow"),
    ("matplotlib", "import matplotlib"),
    ("scipy", "import scipy"),
    ("optuna", "import optuna"),
    ("gymnasium + gym-anytrading", "import gymnasium"),
    ("", "import gym_anytrading"),
    ("tensorboard (SB3 logger)", "import torch.utils.tensorboard"),
    ("boto3 + prometheus_client + yaml", "import boto3"),
    ("", "import prometheus_client"),
    ("", "import yaml"),
    ("data load + features + splits", "data"),
    ("env build", "env"),
    ("model build (or load)", "model"),
)


# --- the driver ------------------------------------------------------------------------------


def _tree_env(tree: str, cache: str | None, seed: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(Path(tree) / p) for p in ("api", "trainer", "operator")]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["OMP_NUM_THREADS"] = "1"  # as trainer pods run (the image's ENV)
    env["STEVIE_METRICS_PORT"] = "0"
    env.pop("STEVIE_NUMBA_CACHE_SEED", None)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    if seed is not None:
        env["STEVIE_NUMBA_CACHE_SEED"] = seed
    return env


def _bake(tree: str, seed: str) -> str | None:
    """Bake the tree's numba cache into ``seed`` as its image does; None if it has no bake."""
    import subprocess

    if not (Path(tree) / "trainer" / "stevie_trainer" / "rl" / "bake.py").exists():
        return None
    subprocess.run([sys.executable, "-m", "stevie_trainer.rl.bake"], env=_tree_env(tree, seed),
                   check=True, capture_output=True)  # fmt: skip
    return seed


def _commands(workdir: str) -> dict[str, list[str]]:
    """The trainer command lines measured, from the repository's examples."""
    import yaml

    root = Path(__file__).resolve().parents[1] / "examples"
    run = yaml.safe_load((root / "trainingrun-quickstart.yaml").read_text())["spec"]
    run["totalTimesteps"] = 4096
    pop = yaml.safe_load((root / "pbt-population.yaml").read_text())
    pop_file = str(Path(workdir) / "population-spec.json")
    Path(pop_file).write_text(json.dumps(pop))
    return {
        # What a TrainingRun's Job runs (--spec-json "$(STEVIE_SPEC)").
        "train": ["train", "--spec-json", json.dumps(run, sort_keys=True), "--out"],
        # What a PBT member's first interval Job runs.
        "pbt-interval": ["pbt-interval", "--population-spec", pop_file, "--member", "0",
                         "--interval", "0", "--hyperparameters-json", "{}", "--out"],
    }  # fmt: skip


def _run_probe(tree: str, argv: list[str], cache: str | None, scratch: str,
               seed: str | None = None) -> dict[str, float]:  # fmt: skip
    import subprocess
    import tempfile

    out = tempfile.mktemp(dir=scratch, suffix=".json")
    run_dir = tempfile.mkdtemp(dir=scratch)
    env = _tree_env(tree, cache, seed)
    spawned = time.monotonic()
    done = subprocess.run([sys.executable, str(PROBE), out, "--", *argv, run_dir], env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0 or not Path(out).exists():
        raise RuntimeError(f"probe failed in {tree}:\n{done.stderr[-3000:]}")
    doc = json.loads(Path(out).read_text())
    want = str((Path(tree) / "trainer").resolve())
    if not str(Path(doc["files"]["stevie_trainer"]).resolve()).startswith(want):
        raise RuntimeError(f"{tree}: imported {doc['files']['stevie_trainer']}")
    row: dict[str, float] = dict(doc["frames"])
    row["spawn"] = doc["probe_started"] - spawned
    row["total"] = doc["first_step"] - spawned
    row["cpu"] = doc["cpu"]
    row["loaded"] = doc["counts"]["numba_loaded"]
    row["compiled"] = doc["counts"]["numba_compiled"]
    return row


def _entry_import(tree: str) -> float:
    import subprocess

    spawned = time.monotonic()
    subprocess.run([sys.executable, "-c", "import stevie_trainer.__main__"],
                   env=_tree_env(tree, None), check=True)  # fmt: skip
    return time.monotonic() - spawned


def _table(trees: list[str], runs: dict[str, list[dict[str, float]]], entry: dict[str, float]
           ) -> str:  # fmt: skip
    from statistics import median

    def med(label: str, key: str) -> float:
        return median(r.get(key, 0.0) for r in runs[label])

    lines = [f"{'':40s}" + "".join(f"{t:>10s}" for t in trees)]
    lines.append(f"{'entry import (own interpreter)':40s}"
                 + "".join(f"{entry[t]:>10.2f}" for t in trees))  # fmt: skip
    merged: list[tuple[str, list[str]]] = []
    for label, key in ROWS:
        if label:
            merged.append((label, [key]))
        else:
            merged[-1][1].append(key)
    named = {k for _, keys in merged for k in keys}
    for label, keys in merged:
        lines.append(f"{label:40s}" + "".join(f"{sum(med(t, k) for k in keys):>10.2f}"
                                              for t in trees))  # fmt: skip
    # The remainder run by run, then its median (medians of parts do not add up).
    rest = {t: median(r["total"] - sum(r.get(k, 0.0) for k in named) for r in runs[t])
            for t in trees}  # fmt: skip
    lines.append(f"{'everything else (own code, SB3 setup)':40s}"
                 + "".join(f"{rest[t]:>10.2f}" for t in trees))  # fmt: skip
    lines.append(f"{'TOTAL to first training step (median)':40s}"
                 + "".join(f"{med(t, 'total'):>10.2f}" for t in trees))  # fmt: skip
    lines.append(f"{'  CPU seconds of the process (median)':40s}"
                 + "".join(f"{med(t, 'cpu'):>10.2f}" for t in trees))  # fmt: skip
    lines.append(f"{'  min .. max':40s}" + "".join(
        f"{min(r['total'] for r in runs[t]):>5.2f}..{max(r['total'] for r in runs[t]):<4.2f}"
        for t in trees))  # fmt: skip
    lines.append(f"{'numba kernels loaded / compiled':40s}"
                 + "".join(f"{int(med(t, 'loaded')):>6d} / {int(med(t, 'compiled')):<1d}"
                           for t in trees))  # fmt: skip
    if len(trees) > 1:
        first, last = trees[0], trees[-1]
        lines.append(f"{first} / {last}: {med(first, 'total') / med(last, 'total'):.1f}x")
    return "\n".join(lines)


def main() -> None:
    import argparse
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        help="LABEL=PATH of a source tree (default: this one, as 'here')",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commands", default="train,pbt-interval")
    parser.add_argument("--cache", default="pod", help="pod, warm, empty, or a list: pod,empty")
    args = parser.parse_args()  # fmt: skip
    here = str(Path(__file__).resolve().parents[1])
    trees = dict(t.split("=", 1) for t in args.tree) or {"here": here}
    labels = list(trees)
    scratch = tempfile.mkdtemp(prefix="stevie-cold-start-")
    print(f"python {sys.version.split()[0]}, OMP_NUM_THREADS=1, {args.runs} fresh interpreters "
          f"per tree and case, interleaved; trees: {trees}")  # fmt: skip
    entry = {t: sorted(_entry_import(trees[t]) for _ in range(args.runs))[args.runs // 2]
             for t in labels}  # fmt: skip
    commands = _commands(scratch)
    seeds: dict[str, str | None] = {}
    if "pod" in args.cache.split(","):
        seeds = {t: _bake(trees[t], str(Path(scratch) / f"seed-{t}")) for t in labels}
        print("baked seeds: " + ", ".join(f"{t}: {'yes' if seeds[t] else 'none'}" for t in labels))
    for cache in args.cache.split(","):
        for command in args.commands.split(","):
            argv = commands[command]
            caches = {t: str(Path(scratch) / f"numba-{t}-{command}") for t in labels}
            if cache == "warm":
                for t in labels:  # fill each tree's cache: not counted
                    _run_probe(trees[t], argv, caches[t], scratch)
            runs: dict[str, list[dict[str, float]]] = {t: [] for t in labels}
            for _ in range(args.runs):
                for t in labels:
                    where = caches[t] if cache == "warm" else tempfile.mkdtemp(dir=scratch)
                    seed = seeds.get(t) if cache == "pod" else None
                    runs[t].append(_run_probe(trees[t], argv, where, scratch, seed))
            print(f"\n== {command}, numba cache {cache}: seconds, median of {args.runs}")
            print(_table(labels, runs, entry))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
