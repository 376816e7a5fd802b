"""``stevie run`` of an HPOStudy: the study controller with local trial processes.

The controller loop (the operator will drive the same steps with Jobs): count the trials;
stop when the study is over; ask as many new trials as ``parallelism`` allows; start a
``python -m stevie_trainer trial`` process per running trial that has none; mark a trial
failed when its process died without telling the study. Trials share one Optuna
JournalStorage file (or, when spec.storage.urlSecretRef names a Secret, the RDB URL in
$STEVIE_HPO_STORAGE: there is no cluster to read the Secret from), so a rerun continues the
study: finished trials are kept, running ones are restarted (each resumes its finished seeds).
The storage reaches the trial processes through their environment, so a password stays out
of ``ps``. At the end: the significance test of the best configuration against the default
one, and the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stevie_api.hpo import HPOStudy, HPOStudyStatus
from stevie_trainer.hpo.study import (
    ask_count,
    ask_trials,
    best_trials,
    mark_failed,
    open_study,
    running_trials,
    storage_location,
    study_phase,
    study_summary,
    trial_counts,
)

STORAGE_ENV = "STEVIE_HPO_STORAGE"


class TrialProcesses:
    """One ``python -m stevie_trainer trial`` subprocess per running trial."""

    def __init__(self, spec_file: Path, storage: str, study_dir: Path) -> None:
        self.spec_file = spec_file
        self.storage = storage
        self.study_dir = study_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, number: int, name: str) -> None:
        log = (self.study_dir / f"{name}.log").open("ab")
        cmd = [sys.executable, "-m", "stevie_trainer", "trial"]
        cmd += ["--study-spec", str(self.spec_file)]  # --storage: $STEVIE_HPO_STORAGE
        cmd += ["--trial-number", str(number), "--out", str(self.study_dir / name)]
        env = {**os.environ, STORAGE_ENV: self.storage}
        self.procs[number] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def exit_code(self, number: int) -> int | None:
        proc = self.procs.get(number)
        return None if proc is None else proc.poll()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.wait()


def _describe(status: HPOStudyStatus) -> str:
    t = status.trials
    counts = (
        f"{t.completed} completed, {t.pruned} pruned, {t.failed} failed, {t.running} running"
        if t
        else "no trials"
    )
    best = (
        f"; best {status.best_value:.3f} (trial {status.best_trial})"
        if status.best_value is not None
        else ""
    )
    return f"trials: {counts}{best}"


def run_hpo_study(
    study: HPOStudy,
    data_dir: Path,
    *,
    poll_seconds: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the study to its end with local processes; return the resource with its status."""
    spec = study.spec
    name = study.metadata.name
    namespace = study.metadata.namespace or "default"
    rdb_url = None
    shown = None
    if spec.storage.url_secret_ref:
        rdb_url = os.environ.get(STORAGE_ENV)
        if not rdb_url:
            raise ValueError(
                f"spec.storage.urlSecretRef is {spec.storage.url_secret_ref!r} but `stevie run` "
                f"has no cluster to read that Secret from: set {STORAGE_ENV} to the RDB URL "
                "(e.g. postgresql://user:pass@host/db)"
            )
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            shown = make_url(rdb_url).render_as_string(hide_password=True)
        except ArgumentError:
            raise ValueError(f"{STORAGE_ENV} is not an RDB URL (postgresql://...)") from None
    study_dir = (data_dir / namespace / "hpostudies" / name).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    doc = study.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec_file = study_dir / "study.json"
    spec_file.write_text(json.dumps(doc, indent=2))
    storage = storage_location(spec, str(study_dir), rdb_url)
    optuna_study = open_study(spec, name, storage)
    trials = TrialProcesses(spec_file, storage, study_dir)
    started = datetime.now(UTC)
    say(f"HPOStudy/{name}: study storage {shown or storage}; trial logs in {study_dir}")
    last = ""
    try:
        while True:
            counts = trial_counts(optuna_study)
            phase = study_phase(counts, spec)
            if phase is not None:
                break
            ask_trials(optuna_study, spec, ask_count(counts, spec), name)
            for trial in running_trials(optuna_study, name):
                code = trials.exit_code(trial.number)
                if trial.number not in trials.procs:
                    trials.start(trial.number, trial.name)
                elif code is not None:
                    # The process ended but the trial is still RUNNING: it died untold.
                    mark_failed(optuna_study, trial.number, f"trial process exited with {code}")
            line = _describe(study_summary(optuna_study))
            if line != last:
                say(line)
                last = line
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        trials.stop()
        raise
    status = study_summary(optuna_study)
    status.phase = phase
    status.observed_generation = study.metadata.generation or 1
    status.start_time = started
    if phase == "Succeeded" and best_trials(optuna_study):
        status = finish(study, storage, study_dir, status, say)
    status.completion_time = datetime.now(UTC)
    ok = phase == "Succeeded"
    reason = "StudySucceeded" if ok else "TooManyFailedTrials"
    status.message = _describe(status)
    for type_, value in (("Ready", ok), ("Succeeded", ok), ("Failed", not ok)):
        status.set_condition(type_, "True" if value else "False", reason, status.message)
    status.set_condition("Progressing", "False", reason, status.message)
    status.set_condition("Degraded", "True" if not ok else "False", reason, status.message)
    doc["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return doc


def finish(
    study: HPOStudy,
    storage: str,
    study_dir: Path,
    status: HPOStudyStatus,
    say: Callable[[str], None],
) -> HPOStudyStatus:
    """What the cluster's finish Job runs (significance: best vs default over fresh seeds,
    then the report and plots), in this process; its outputs go into the status."""
    from stevie_operator.hpo_study import read_outputs
    from stevie_trainer.hpo.finish import finish_study

    spec = study.spec
    finish_study(spec, study.metadata.name, storage, str(study_dir), log=say)
    outputs = read_outputs(str(study_dir), spec)
    status.significance = outputs.significance
    status.results_uri = outputs.results_uri
    status.report_uri = outputs.report_uri
    return status
