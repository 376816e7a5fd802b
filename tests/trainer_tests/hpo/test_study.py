"""Optuna studies from an HPOStudy spec: storage, samplers, pruners, ask/tell, summaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from stevie_api.hpo import HPOStudySpec, TrialCounts
from stevie_trainer.hpo.study import (
    StudyConflictError,
    ask_count,
    ask_trials,
    distributions,
    load_study_spec,
    make_pruner,
    make_sampler,
    mark_failed,
    objective_value,
    open_storage,
    open_study,
    running_trials,
    seed_spec,
    storage_location,
    study_phase,
    study_summary,
    tell_trial,
    trial_counts,
    trial_name,
    trial_spec,
)
from support.paths import REPO
from support.specs import template

BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def hpo_spec(**overrides: Any) -> HPOStudySpec:
    doc: dict[str, Any] = {
        "template": template(),
        "searchSpace": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "gamma": {"type": "float", "low": 0.9, "high": 0.9999},
            "n_epochs": {"type": "int", "low": 1, "high": 4},
            "batch_size": {"type": "categorical", "choices": [32, 64, 512]},
        },
        "maxTrials": 4,
        "parallelism": 2,
    }
    doc.update(overrides)
    return HPOStudySpec.model_validate(doc)


def test_search_space_becomes_optuna_distributions() -> None:
    dists = distributions(hpo_spec())
    lr = dists["learning_rate"]
    assert isinstance(lr, optuna.distributions.FloatDistribution)
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)
    epochs = dists["n_epochs"]
    assert isinstance(epochs, optuna.distributions.IntDistribution)
    assert (epochs.low, epochs.high) == (1, 4)
    batch = dists["batch_size"]
    assert isinstance(batch, optuna.distributions.CategoricalDistribution)
    assert list(batch.choices) == [32, 64, 512]


@pytest.mark.parametrize(
    ("sampler", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
    ],
)
def test_every_sampler_drives_a_study(sampler: str, cls: type, tmp_path: Path) -> None:
    spec = hpo_spec(sampler=sampler, startupTrials=2, maxTrials=8)
    assert isinstance(make_sampler(spec, seed=1), cls)
    study = open_study(spec, "s", str(tmp_path / "j.journal"))
    seen = []
    for _ in range(4):
        for asked in ask_trials(study, spec, 2, "s"):
            seen.append(tuple(sorted(asked.params.items())))
            assert set(asked.params) == set(spec.search_space)
            tell_trial(study, asked.number, [-asked.params["learning_rate"]])
    # No point sampled twice (NSGA-II's offspring may copy a parent: its first generation).
    distinct = seen[:4] if sampler == "nsga2" else seen
    assert len(set(distinct)) == len(distinct)
    assert trial_counts(study) == TrialCounts(completed=8)


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruners(pruner: str, cls: type) -> None:
    assert isinstance(make_pruner(hpo_spec(pruner=pruner)), cls)


def test_median_warmup_is_counted_in_evaluations() -> None:
    pruner = make_pruner(hpo_spec(pruner="median", warmupEvaluations=2, startupTrials=3))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_warmup_steps == 2 * 512 and pruner._n_startup_trials == 3


def test_storage_defaults_to_a_journal_in_the_study_folder(tmp_path: Path) -> None:
    spec = hpo_spec()
    location = storage_location(spec, str(tmp_path / "study"))
    assert location == str(tmp_path / "study" / "optuna.journal")
    assert isinstance(open_storage(location), optuna.storages.JournalStorage)
    assert storage_location(hpo_spec(storage={"journalPath": "/x/j"}), "/s") == "/x/j"
    rdb = hpo_spec(storage={"urlSecretRef": "db"})
    with pytest.raises(ValueError, match="urlSecretRef"):
        storage_location(rdb, "/s")
    assert storage_location(rdb, "/s", "postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ValueError, match="shared file system"):
        open_storage("s3://bucket/study/optuna.journal")


def test_rdb_url_is_used_as_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    assert isinstance(open_storage(url), optuna.storages.RDBStorage)
    spec = hpo_spec()
    study = open_study(spec, "s", url)
    asked = ask_trials(study, spec, 2, "s")
    again = open_study(spec, "s", url)
    assert [t.number for t in running_trials(again, "s")] == [a.number for a in asked]


def test_resume_after_restart_neither_duplicates_nor_loses_trials(tmp_path: Path) -> None:
    spec = hpo_spec()
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "demo", journal)
    first = ask_trials(study, spec, ask_count(trial_counts(study), spec), "demo")
    assert [a.name for a in first] == ["demo-t0", "demo-t1"]
    assert ask_count(trial_counts(study), spec) == 0  # parallelism 2 reached
    # The controller restarts: a fresh study object over the same journal.
    restarted = open_study(spec, "demo", journal)
    assert running_trials(restarted, "demo") == first  # re-launch these, same names
    tell_trial(restarted, 0, [1.0])
    tell_trial(restarted, 0, [5.0])  # a repeated tell is a no-op
    assert restarted.trials[0].values == [1.0]
    counts = trial_counts(restarted)
    assert counts == TrialCounts(running=1, completed=1)
    more = ask_trials(restarted, spec, ask_count(counts, spec), "demo")
    assert [a.number for a in more] == [2]
    assert more[0].params != first[0].params


def test_editing_max_trials_and_parallelism_takes_effect(tmp_path: Path) -> None:
    journal = str(tmp_path / "j")
    spec = hpo_spec()
    open_study(spec, "s", journal)
    bigger = hpo_spec(maxTrials=10, parallelism=5)
    study = open_study(bigger, "s", journal)  # same space: accepted
    assert ask_count(trial_counts(study), bigger) == 5
    changed = hpo_spec(searchSpace={"gamma": {"type": "float", "low": 0.9, "high": 0.99}})
    with pytest.raises(StudyConflictError, match="another search space"):
        open_study(changed, "s", journal)


def test_ask_count_and_phase() -> None:
    spec = hpo_spec(maxTrials=4, parallelism=2, maxFailedTrials=1)
    assert ask_count(TrialCounts(), spec) == 2
    assert ask_count(TrialCounts(running=1, completed=1), spec) == 1
    assert ask_count(TrialCounts(running=1, completed=2), spec) == 1
    assert ask_count(TrialCounts(running=0, completed=2, pruned=1, failed=1), spec) == 1
    assert ask_count(TrialCounts(running=1, completed=3), spec) == 0
    assert study_phase(TrialCounts(running=1, completed=3), spec) is None
    assert study_phase(TrialCounts(completed=3, pruned=1), spec) == "Succeeded"
    assert study_phase(TrialCounts(completed=1, failed=2), spec) == "Failed"
    assert ask_count(TrialCounts(completed=1, failed=2), spec) == 0


def test_mark_failed_records_the_error(tmp_path: Path) -> None:
    spec = hpo_spec()
    study = open_study(spec, "s", str(tmp_path / "j"))
    (asked,) = ask_trials(study, spec, 1, "s")
    failed = mark_failed(study, asked.number, "OOMKilled")
    assert failed.state == TrialState.FAIL and failed.user_attrs["error"] == "OOMKilled"
    assert mark_failed(study, asked.number, "again").user_attrs["error"] == "OOMKilled"
    assert trial_counts(study).failed == 1


def test_trial_spec_applies_params_and_cuts_the_batch_to_the_rollout() -> None:
    spec = hpo_spec()
    run_spec, adjusted = trial_spec(spec, {"learning_rate": 0.001, "batch_size": 512})
    assert run_spec.ppo.learning_rate == 0.001
    assert run_spec.ppo.batch_size == 256 and adjusted == {"batch_size": 256}
    assert trial_spec(spec, {"batch_size": 32})[1] == {}
    assert seed_spec(run_spec, 2).seed == 2 and seed_spec(run_spec, 1, 1000).seed == 1001
    assert trial_name("my-study", 7) == "my-study-t7"


def test_objective_values() -> None:
    metrics = {"sharpe": 1.5, "max_drawdown": -0.2, "win_rate": None}
    assert objective_value(metrics, "validation.sharpe") == 1.5
    assert objective_value(metrics, "validation.max_drawdown") == 0.2  # positive fraction
    assert objective_value(metrics, "validation.win_rate") == 0.0  # undefined
    assert objective_value(None, "validation.sharpe") == 0.0


def test_summary_single_and_multi_objective(tmp_path: Path) -> None:
    spec = hpo_spec()
    study = open_study(spec, "s", str(tmp_path / "a"))
    for asked, value in zip(ask_trials(study, spec, 3, "s"), [0.5, 2.0, 1.0], strict=True):
        tell_trial(study, asked.number, [value])
    status = study_summary(study)
    assert status.best_trial == 1 and status.best_value == 2.0
    assert [t.number for t in status.top] == [1, 2, 0]
    assert status.pareto_front_size is None and status.best_values is None

    multi = hpo_spec(
        sampler="nsga2",
        pruner="none",
        objectives=[
            {"metric": "validation.sharpe", "direction": "maximize"},
            {"metric": "validation.max_drawdown", "direction": "minimize"},
        ],
    )
    study = open_study(multi, "m", str(tmp_path / "b"))
    points = [[1.0, 0.3], [2.0, 0.5], [0.5, 0.1], [0.4, 0.4]]  # the last is dominated
    for asked, values in zip(ask_trials(study, multi, 4, "m"), points, strict=True):
        tell_trial(study, asked.number, values)
    status = study_summary(study)
    assert status.pareto_front_size == 3
    assert status.best_trial == 1 and status.best_values == [2.0, 0.5]
    assert [t.number for t in status.top] == [1, 0, 2]


def test_example_resource_loads(tmp_path: Path) -> None:
    text = (REPO / "examples" / "hpo-study.yaml").read_text()
    spec, name = load_study_spec(text, "hpo-study.yaml")
    assert name == "hpo-study" and spec.sampler == "tpe"
    bare, none = load_study_spec('{"template": {"data": {"uri": "x.csv"}}}', "s.json")
    assert none is None and bare.max_trials == 20
    with pytest.raises(ValueError, match="maxTrials"):
        load_study_spec('{"template": {"data": {"uri": "x.csv"}}, "maxTrials": 0}', "s.json")


def test_study_modules_are_torch_free() -> None:
    code = (
        "import sys; import stevie_trainer.hpo.study, stevie_trainer.hpo.report, "
        "stevie_trainer.hpo.significance; "
        "bad = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env_path = f"{REPO / 'api'}:{REPO / 'trainer'}"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path}, timeout=60
    )
