"""`stevie run` of an HPOStudy: parallel trial processes sharing one journal, report, rerun."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from stevie_operator.framework.artifacts import local_uid
from stevie_trainer.evaluation.overfitting import probability_of_backtest_overfitting
from stevie_trainer.hpo.significance import compare
from stevie_trainer.hpo.study import open_storage
from support.specs import hpo_study

STUDY = yaml.safe_dump(hpo_study(), sort_keys=False)


def run(file: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stevie_operator.cli", "run", str(file), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_hpo_study_runs_locally_with_parallel_trials_and_reports(tmp_path: Path) -> None:
    file = tmp_path / "study.yaml"
    file.write_text(STUDY)
    data = tmp_path / "runs"
    done = run(file, data)
    assert done.returncode == 0, done.stderr
    assert "best trial" in done.stdout and "report:" in done.stdout
    assert "over 2 seeds each" in done.stdout  # the significance sentence
    doc = yaml.safe_load(done.stdout[done.stdout.rindex("apiVersion:") :])
    status = doc["status"]
    assert status["phase"] == "Succeeded"
    assert status["trials"]["completed"] + status["trials"]["pruned"] == 4
    assert status["bestTrial"] in range(4) and set(status["bestParams"]) == {
        "learning_rate",
        "gamma",
    }
    study_dir = (
        data / "default" / "hpostudies" / "tiny-hpo" / local_uid("HPOStudy", "default", "tiny-hpo")
    )
    # The verdict in the status is the one the seeds' own numbers give.
    seeds = json.loads((study_dir / "significance" / "significance.json").read_text())
    assert len(seeds["best"]) == len(seeds["default"]) == 2
    verdict = compare(seeds["best"], seeds["default"], confidence=seeds["confidence"])
    assert status["significance"]["significant"] is verdict.significant
    assert status["significance"]["bestMean"] == pytest.approx(verdict.best_mean)
    assert verdict.sentence() in done.stdout
    results = json.loads((study_dir / "optimization_results.json").read_text())
    assert len(results["trials"]) == 4
    # How much is luck: the status carries overfitting.json, whose PBO is that of the
    # trials' stored validation returns.
    luck = json.loads((study_dir / "overfitting.json").read_text())
    assert status["overfitting"]["trials"] == luck["trials"] == 4
    if luck["pbo"] is not None:
        columns = [
            np.load(study_dir / f"{t['name']}" / "seed-0" / "validation_returns.npy")
            for t in results["trials"] if t["number"] in luck["pbo"]["trials"]
        ]  # fmt: skip
        pbo = probability_of_backtest_overfitting(np.column_stack(columns))
        assert status["overfitting"]["pbo"] == luck["pbo"]["pbo"] == pbo.pbo
    else:
        assert status["overfitting"]["pbo"] is None and "PBO not computed" in luck["notes"][1]
    for name in (
        "optimization_report.txt",
        "best_hyperparameters.json",
        "optimization_history.png",
    ):
        assert (study_dir / name).is_file(), name
    # Two trial processes ran at the same time against the one journal file.
    storage = open_storage(str(study_dir / "optuna.journal"))
    trials = optuna.load_study(study_name="tiny-hpo", storage=storage).get_trials()
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert all(start is not None and end is not None for start, end in spans)
    assert any(
        b[0] < a[1]  # type: ignore[operator]
        for a, b in itertools.pairwise(spans)
    )

    again = run(file, data)  # a finished study is reported again, no trial re-run
    assert again.returncode == 0, again.stderr
    rerun_results = json.loads((study_dir / "optimization_results.json").read_text())
    assert len(rerun_results["trials"]) == 4
