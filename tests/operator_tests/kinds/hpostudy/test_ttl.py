"""Finished HPOStudy Jobs that disappear (``ttlSecondsAfterFinished``) are never run again:
a trial told to Optuna is done; a recorded report, or a recorded failure of the finish, stands.
Driven like the controller drives it, against a real Optuna JournalStorage in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

from support.hpo import World
from support.jobs import done, failed

FINISH = "hpo-finish-2"


def two_trials(tmp_path: Path) -> World:
    return World(tmp_path, maxTrials=2)


def trials_done_and_gone(w: World) -> None:
    """Each worker tells the study, exits 0, and its Job is deleted."""
    for number in (0, 1):
        w.optuna().tell(number, [0.5 + number])
        del w.jobs[f"hpo-t{number}"]


def write_outputs(w: World) -> None:
    sig = {"best_mean": 0.8, "default_mean": 0.1, "p_value": 0.01, "ci_low": 0.2,
           "ci_high": 1.1, "significant": True, "sentence": "significant"}  # fmt: skip
    (w.folder / "significance").mkdir()
    (w.folder / "significance" / "significance.json").write_text(json.dumps(sig))
    (w.folder / "optimization_results.json").write_text("{}")
    (w.folder / "optimization_report.txt").write_text("report")


def test_trials_told_to_the_study_are_not_run_again_when_their_jobs_go(tmp_path: Path) -> None:
    w = two_trials(tmp_path)
    w.step()
    trials_done_and_gone(w)
    plan = w.step()
    assert plan.status["trials"]["completed"] == 2
    assert [c.name for c in plan.children] == [FINISH]
    assert w.created == ["hpo-t0", "hpo-t1", FINISH]


def test_a_failed_finish_whose_job_is_gone_is_not_run_again(tmp_path: Path) -> None:
    w = two_trials(tmp_path)
    w.step()
    trials_done_and_gone(w)
    w.step()
    w.jobs[FINISH]["status"] = failed(pods=4)
    plan = w.step()
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert plan.phase == "Succeeded" and degraded["reason"] == "ReportFailed"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
    assert w.created.count(FINISH) == 1


def test_a_reported_study_whose_finish_job_is_gone_stays_succeeded(tmp_path: Path) -> None:
    w = two_trials(tmp_path)
    w.step()
    trials_done_and_gone(w)
    w.step()
    write_outputs(w)
    w.jobs[FINISH]["status"] = done()
    assert w.step().phase == "Succeeded"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
