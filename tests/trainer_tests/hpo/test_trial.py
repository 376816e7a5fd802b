"""The HPO trial worker on tiny budgets: seeds, pruning, failures, parallel processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from stevie_api.hpo import HPOStudySpec, TrialCounts
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import prepare
from stevie_trainer.hpo.report import pruning_savings
from stevie_trainer.hpo.study import (
    ask_count,
    ask_trials,
    open_study,
    running_trials,
    study_phase,
    trial_counts,
)
from stevie_trainer.hpo.trial import run_trial
from support.paths import REPO
from support.specs import template

BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def hpo_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "template": template(),
        "searchSpace": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "clip_range": {"type": "float", "low": 0.1, "high": 0.4},
        },
        "maxTrials": 4,
        "parallelism": 2,
        "startupTrials": 2,
        "warmupEvaluations": 0,
    }
    doc.update(overrides)
    return doc


def quiet(_: str) -> None:
    pass


class EpisodeEnds:
    """Records the last bar of every episode any simulator account starts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ends: list[int] = []
        original = Accounts.reset

        def reset(acc: Accounts, idx: Any, starts: Any, ends: Any, out: Any = None) -> None:
            self.ends.extend(int(e) for e in np.asarray(ends).reshape(-1))
            original(acc, idx, starts, ends, out)

        monkeypatch.setattr(Accounts, "reset", reset)


def test_trial_trains_each_seed_and_reports_the_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = HPOStudySpec.model_validate(hpo_doc(seedsPerTrial=2, pruner="none"))
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "s", journal)
    (asked,) = ask_trials(study, spec, 1, "s")
    out = tmp_path / asked.name
    episodes = EpisodeEnds(monkeypatch)
    trial = run_trial(spec, "s", journal, asked.number, str(out), log=quiet)
    # No account ever stepped a bar of the test split: training and validation only.
    test_start = prepare(spec.template).splits.test[0]
    assert len(episodes.ends) > 10 and max(episodes.ends) < test_start
    assert trial.state == TrialState.COMPLETE
    # Evaluations at 512 and 1024 timesteps per seed; steps continue across seeds.
    assert sorted(trial.intermediate_values) == [512, 1024, 1536, 2048]
    per_seed = [v[0] for v in trial.user_attrs["seed_values"]]
    assert len(per_seed) == 2 and trial.values[0] == pytest.approx(sum(per_seed) / 2)
    assert trial.user_attrs["timesteps_done"] == trial.user_attrs["timesteps_budget"] == 2048
    for k in (0, 1):
        seed = json.loads((out / f"seed-{k}" / "result.json").read_text())
        assert seed["seed"] == k and seed["status"] == "succeeded"
        assert (out / f"seed-{k}" / "model.zip").is_file()
        assert "test" not in seed  # and none reported
    doc = json.loads((out / "trial.json").read_text())
    assert doc["state"] == "COMPLETE" and doc["params"] == asked.params
    # Running it again (a retried pod) changes nothing.
    again = run_trial(spec, "s", journal, asked.number, str(out), log=quiet)
    assert again.values == trial.values and again.datetime_complete == trial.datetime_complete


def test_median_pruner_stops_a_bad_trial(tmp_path: Path) -> None:
    doc = hpo_doc(pruner="median")
    doc["template"]["totalTimesteps"] = 2048
    spec = HPOStudySpec.model_validate(doc)
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "p", journal)
    # Two finished trials that were excellent at every evaluation: anything real is worse.
    for lr in (1e-3, 2e-3):
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": lr, "clip_range": 0.2},
                distributions={
                    "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
                    "clip_range": FloatDistribution(0.1, 0.4),
                },
                values=[50.0],
                intermediate_values={512: 50.0, 1024: 50.0, 1536: 50.0, 2048: 50.0},
                user_attrs={"timesteps_budget": 2048, "timesteps_done": 2048},
            )
        )
    (asked,) = ask_trials(study, spec, 1, "p")
    lines: list[str] = []
    trial = run_trial(spec, "p", journal, asked.number, str(tmp_path / "t"), log=lines.append)
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [512]  # stopped at the first evaluation
    assert trial.user_attrs["timesteps_done"] == 512
    assert any("pruned" in line for line in lines)
    savings = pruning_savings(study.get_trials())
    assert savings["pruned_trials"] == 1 and savings["saved_timesteps"] == 2048 - 512
    assert savings["saved_share"] == pytest.approx((2048 - 512) / (3 * 2048))


def test_a_trial_that_raises_is_marked_failed(tmp_path: Path) -> None:
    doc = hpo_doc()
    doc["template"]["data"]["uri"] = str(tmp_path / "missing.csv")
    spec = HPOStudySpec.model_validate(doc)
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "f", journal)
    (asked,) = ask_trials(study, spec, 1, "f")
    with pytest.raises(Exception, match=r"missing\.csv"):
        run_trial(spec, "f", journal, asked.number, str(tmp_path / "t"), log=quiet)
    failed = study.trials[asked.number]
    assert failed.state == TrialState.FAIL
    assert "missing.csv" in failed.user_attrs["error"]
    assert trial_counts(study) == TrialCounts(failed=1)
    assert ask_count(trial_counts(study), spec) == 2  # the failed trial is replaced


def test_unknown_trial_number_is_refused(tmp_path: Path) -> None:
    spec = HPOStudySpec.model_validate(hpo_doc())
    journal = str(tmp_path / "j")
    open_study(spec, "u", journal)
    with pytest.raises(ValueError, match="has no trial 3"):
        run_trial(spec, "u", journal, 3, str(tmp_path / "t"), log=quiet)


def _trial_command(spec_file: Path, journal: Path, number: int, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stevie_trainer",
        "trial",
        "--study-spec",
        str(spec_file),
        "--storage",
        str(journal),
        "--trial-number",
        str(number),
        "--out",
        str(out),
    ]


@pytest.mark.slow
def test_two_trial_processes_share_one_journal(tmp_path: Path) -> None:
    """A tiny study driven like the local runner: 4 trials, 2 processes at a time."""
    resource = {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "HPOStudy",
        "metadata": {"name": "tiny"},
        "spec": hpo_doc(pruner="median", maxTrials=4, parallelism=2),
    }
    spec_file = tmp_path / "study.json"
    spec_file.write_text(json.dumps(resource))
    spec = HPOStudySpec.model_validate(resource["spec"])
    journal = tmp_path / "tiny" / "optuna.journal"
    env = os.environ | {"PYTHONPATH": f"{REPO / 'api'}:{REPO / 'trainer'}"}
    study = open_study(spec, "tiny", str(journal))
    launched: list[str] = []
    while study_phase(trial_counts(study), spec) is None:
        ask_trials(study, spec, ask_count(trial_counts(study), spec), "tiny")
        batch = running_trials(study, "tiny")
        assert len(batch) <= spec.parallelism
        procs = [
            subprocess.Popen(
                _trial_command(spec_file, journal, t.number, tmp_path / "tiny" / t.name),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for t in batch
        ]
        launched += [t.name for t in batch]
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            assert json.loads(stdout.strip().splitlines()[-1])["event"] == "trial"
    assert launched == ["tiny-t0", "tiny-t1", "tiny-t2", "tiny-t3"]
    assert study_phase(trial_counts(study), spec) == "Succeeded"
    trials = optuna.load_study(
        study_name="tiny",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    ).trials
    assert len(trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(t.intermediate_values for t in trials)
    # The report command reads the same journal.
    report = subprocess.run(
        [
            sys.executable, "-m", "stevie_trainer", "hpo-report",
            "--study-spec", str(spec_file), "--storage", str(journal),
            "--out", str(tmp_path / "tiny"),
        ],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "HPO study tiny: 4 trials" in report.stdout
    for name in ("optimization_results.json", "best_hyperparameters.json",
                 "optimization_history.png"):  # fmt: skip
        assert (tmp_path / "tiny" / name).is_file(), name


def test_multi_objective_nsga2_study_has_a_pareto_front(tmp_path: Path) -> None:
    from stevie_trainer.hpo.report import write_report

    spec = HPOStudySpec.model_validate(
        hpo_doc(
            sampler="nsga2",
            pruner="none",
            objectives=[
                {"metric": "validation.sharpe", "direction": "maximize"},
                {"metric": "validation.max_drawdown", "direction": "minimize"},
            ],
        )
    )
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "mo", journal)
    for asked in ask_trials(study, spec, 3, "mo"):
        trial = run_trial(spec, "mo", journal, asked.number, str(tmp_path / asked.name), log=quiet)
        assert trial.state == TrialState.COMPLETE and len(trial.values) == 2
        assert trial.values[1] >= 0  # drawdown as a positive fraction
        assert not trial.intermediate_values  # multi-objective trials are not pruned
    uris = write_report(study, spec, str(tmp_path / "report"), "mo")
    assert (tmp_path / "report" / "pareto_front.png").read_bytes()[:4] == b"\x89PNG"
    best = json.loads(Path(uris["best_hyperparameters.json"]).read_text())
    assert 1 <= len(best["pareto_front"]) <= 3
