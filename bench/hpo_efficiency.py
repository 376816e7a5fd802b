"""HPO efficiency: TPE + median pruning vs random search without pruning, same timesteps.

Random search runs ``--trials`` full trials. TPE + median pruning then runs trials until it
has trained as many timesteps as random search did (pruned trials stop early, so it gets
more trials for the same compute). Both use the seed's search space (nSteps narrowed to fit
the budget) on the same data, two trial processes at a time, and report the best validation
Sharpe reached and the share of compute pruning saved.

    python bench/hpo_efficiency.py [--data URI] [--trials 8] [--steps 16384] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from stevie_api import API_VERSION
from stevie_api.hpo import HPOStudySpec
from stevie_trainer.hpo.report import pruning_savings
from stevie_trainer.hpo.study import (
    ask_trials,
    best_trials,
    open_study,
    running_trials,
    storage_location,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "BTCUSDT_1h.csv"
SEARCH_SPACE: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "gamma": {"type": "float", "low": 0.9, "high": 0.9999},
    "clip_range": {"type": "float", "low": 0.1, "high": 0.4},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
    "n_steps": {"type": "categorical", "choices": [128, 256, 512]},
    "ent_coef": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
}
"""The seed's PPO space, nSteps narrowed to fit small budgets (robust_selection uses it too)."""


def study_doc(data: str, steps: int, sampler: str, pruner: str, trials: int) -> dict[str, Any]:
    return {
        "template": {
            "data": {"uri": data},
            "env": {"episodeLength": 1000},
            "ppo": {"nSteps": 256, "batchSize": 256, "nEpochs": 4},
            "policy": {"netArch": [64, 64]},
            "totalTimesteps": steps,
            "nEnvs": 8,
            "evaluation": {"evalFreq": steps // 8},
        },
        "searchSpace": SEARCH_SPACE,
        "sampler": sampler,
        "pruner": pruner,
        "startupTrials": 3,
        "warmupEvaluations": 2,
        "maxTrials": trials,
        "parallelism": 2,
        "maxFailedTrials": trials,
    }


class Trials:
    """One ``python -m stevie_trainer trial`` process per running trial (the command a
    trial's Job runs), its output in ``<study>/<trial>.log``."""

    def __init__(self, spec_file: Path, storage: str, study_dir: Path) -> None:
        self.spec_file, self.storage, self.study_dir = spec_file, storage, study_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, number: int, name: str) -> None:
        cmd = [sys.executable, "-m", "stevie_trainer", "trial", "--study-spec", str(self.spec_file)]
        cmd += ["--storage", self.storage, "--trial-number", str(number)]
        cmd += ["--out", str(self.study_dir / name)]
        with (self.study_dir / f"{name}.log").open("ab") as log:
            self.procs[number] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def trained_timesteps(trial: Any, budget: int) -> int:
    """Timesteps a finished trial trained (the worker records it; else the budget, or the
    last report of a pruned trial)."""
    if "timesteps_done" in trial.user_attrs:
        return int(trial.user_attrs["timesteps_done"])
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return int(max(trial.intermediate_values))
    return budget


def run_study(
    root: Path, name: str, doc: dict[str, Any], budget_steps: int | None
) -> dict[str, Any]:
    """Run trials two at a time until maxTrials finished, or until ``budget_steps`` spent."""
    spec = HPOStudySpec.model_validate(doc)
    study_dir = root / name
    study_dir.mkdir(parents=True, exist_ok=True)
    spec_file = study_dir / "study.json"
    resource = {"apiVersion": API_VERSION, "kind": "HPOStudy", "metadata": {"name": name}}
    spec_file.write_text(json.dumps(resource | {"spec": doc}))
    storage = storage_location(spec, str(study_dir))
    study = open_study(spec, name, storage)
    procs = Trials(spec_file, storage, study_dir)
    per_trial = spec.template.total_timesteps
    started = time.monotonic()
    while True:
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        running = [t for t in trials if not t.state.is_finished()]
        spent = sum(trained_timesteps(t, per_trial) for t in finished)
        committed = spent + per_trial * len(running)
        if budget_steps is None:
            more = min(spec.parallelism - len(running), spec.max_trials - len(trials))
        else:
            more = spec.parallelism - len(running) if committed < budget_steps else 0
        if more <= 0 and not running:
            break
        ask_trials(study, spec, max(0, more), name)
        for t in running_trials(study, name):
            if t.number not in procs.procs:
                procs.start(t.number, t.name)
        time.sleep(1.0)
    finished = study.get_trials(deepcopy=False)
    best = best_trials(study)
    return {
        "trials": len(finished),
        "pruned": sum(t.state == TrialState.PRUNED for t in finished),
        "failed": sum(t.state == TrialState.FAIL for t in finished),
        "timesteps": sum(trained_timesteps(t, per_trial) for t in finished),
        "best_sharpe": best[0].values[0] if best else None,
        "best_trial": best[0].number if best else None,
        "savings": pruning_savings(list(finished)),
        "seconds": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16384)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-hpo-bench-"))
    rand = run_study(
        root, "random", study_doc(args.data, args.steps, "random", "none", args.trials), None
    )
    tpe = run_study(
        root,
        "tpe-median",
        study_doc(args.data, args.steps, "tpe", "median", 10 * args.trials),
        budget_steps=int(rand["timesteps"]),
    )
    print(f"data {args.data}; {args.steps} timesteps per trial; runs in {root}")
    header = f"{'search':<28}{'trials':>7}{'pruned':>7}{'timesteps':>11}"
    print(header + f"{'best val Sharpe':>17}{'wall s':>8}")
    for label, r in (("random, no pruning", rand), ("TPE + median pruning", tpe)):
        best = "n/a" if r["best_sharpe"] is None else f"{r['best_sharpe']:.3f}"
        print(
            f"{label:<28}{r['trials']:>7}{r['pruned']:>7}{r['timesteps']:>11,}{best:>17}"
            f"{r['seconds']:>8.0f}"
        )
    print(f"pruning savings (TPE study): {tpe['savings']}")


if __name__ == "__main__":
    main()
