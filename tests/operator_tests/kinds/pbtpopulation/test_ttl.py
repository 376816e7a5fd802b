"""Finished PBT Jobs that disappear (``ttlSecondsAfterFinished``) are never run again: an
interval's result.json is its outcome, and a finished population keeps its status."""

from __future__ import annotations

from stevie_operator.kinds.pbtpopulation.children import finish_job_name
from support.jobs import done, failed
from support.pbt_world import World, interval, member, resource

FINISH = finish_job_name("pop")


def two_members() -> World:
    return World(resource(populationSize=2, stopping={"maxIntervals": 2}))


def finish_and_vanish(w: World, name: str) -> None:
    """The interval writes result.json and exits 0; its Job is deleted before the operator
    sees it complete."""
    job = w.jobs.pop(name)
    m, i = member(job), interval(job)
    w.results[(m, i)] = {"status": "succeeded", "fitness": 0.1 * m, "checkpoint": name}


def running(w: World) -> list[str]:
    """The interval Jobs still running (not the finish Job)."""
    return [n for n in w.running() if n != FINISH]


def _to_finish(w: World) -> None:
    for _ in range(10):
        for name in running(w):
            finish_and_vanish(w, name)
        w.step()
        if FINISH in w.jobs:
            return
    raise AssertionError("the population never reached its finish Job")


def test_intervals_whose_jobs_vanished_count_once_and_never_run_again() -> None:
    w = two_members()
    w.step()
    first = running(w)
    _to_finish(w)
    assert w.state is not None and w.state[0].intervals_completed == 4
    assert len(w.created) == len(set(w.created)) == 5  # 4 intervals + finish, none twice
    assert not set(first) & set(running(w))


def test_a_succeeded_population_whose_finish_job_is_gone_creates_nothing() -> None:
    w = two_members()
    w.step()
    _to_finish(w)
    w.jobs[FINISH]["status"] = done()
    w.summary = {"best": {"member": 1, "test": {"best member": {"sharpe": 1.0}}}}
    assert w.step().phase == "Succeeded"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}


def test_a_finish_job_gone_before_its_success_was_recorded_is_read_from_the_summary() -> None:
    w = two_members()
    w.step()
    _to_finish(w)
    del w.jobs[FINISH]
    w.summary = {"best": {"member": 1, "test": {"best member": {"sharpe": 1.0}}}}
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == ()
    assert "test Sharpe 1.00" in plan.status["message"]


def test_a_failed_finish_whose_job_is_gone_is_not_run_again() -> None:
    w = two_members()
    w.step()
    _to_finish(w)
    w.jobs[FINISH]["status"] = failed(pods=4)
    plan = w.step()
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert plan.phase == "Succeeded" and degraded["reason"] == "FinishFailed"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
