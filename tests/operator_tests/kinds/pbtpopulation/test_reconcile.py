"""The PBTPopulation reconciler, pure: a simulated cluster of Jobs and interval results."""

from __future__ import annotations

from stevie_operator.framework.children import with_pods
from stevie_operator.framework.podstatus import PodReport
from stevie_operator.framework.status import Event
from stevie_operator.kinds.pbtpopulation.children import finish_job_name
from stevie_operator.kinds.pbtpopulation.reconcile import Observed, reconcile_pbt
from support.pbt_world import CONFIG, FAILED, T0, World, args, done, interval, member, resource
from support.specs import pbt_population


def test_parallelism_exploits_restart_and_completion() -> None:
    w = World(resource())
    plan = w.step()
    assert plan.phase == "Running" and len(w.running()) == 2  # parallelism 2
    assert w.spec is not None and w.spec["spec"]["populationSize"] == 3
    assert w.step().children == ()  # a restarted operator (same state) creates nothing again
    fitness = {0: 0.5, 1: -0.5, 2: 0.1}
    events: list[Event] = []
    for _ in range(30):
        for name in w.running():
            w.finish(name, fitness[member(w.jobs[name])])
        plan = w.step()
        events += plan.events
        assert len(w.running()) <= 2
        if finish_job_name("pop") in w.jobs:
            break
    assert w.state is not None
    pop = w.state[0]
    assert pop.intervals_completed == 9 and pop.exploits >= 1
    exploits = [e for e in events if e.reason == "Exploit"]
    assert len(exploits) == pop.exploits and "copied member 0" in exploits[0].message
    # Interval Jobs ran the trainer with the copied checkpoint as --init.
    copier = pop.events[0]
    job = next(j for n, j in w.jobs.items() if n != finish_job_name("pop")
               and member(j) == copier.member and interval(j) == copier.interval)  # fmt: skip
    assert args(job)[args(job).index("--init") + 1] == copier.checkpoint
    assert plan.phase == "Running" and plan.status["message"].startswith("writing the summary")
    assert w.state[1] == {n: 10.0 for n in w.created if n != finish_job_name("pop")}
    # The finish Job succeeds and pbt_summary.json appears: Succeeded with the test metrics.
    w.jobs[finish_job_name("pop")]["status"] = done()["status"]
    w.summary = {"best": {"member": 0, "model": "file:///data/ns/pbtpopulations/pop/best/model.zip",
                          "test": {"best member": {"sharpe": 1.25, "trades": 3}}}}  # fmt: skip
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == ()
    assert [e.reason for e in plan.events] == ["PopulationSucceeded"]
    status = plan.status
    assert status["intervalsCompleted"] == 9 and status["bestMember"] == 0
    assert status["test"]["sharpe"] == 1.25 and len(status["top"]) == 3
    assert status["summaryUri"].endswith("pop/u1/pbt_summary.json")  # <name>/<uid>
    assert {c["type"]: c["status"] for c in status["conditions"]}["Succeeded"] == "True"
    assert w.step().events == ()  # one Event per transition


def test_a_failed_interval_job_is_retried_under_a_new_name_then_the_member_fails() -> None:
    w = World(resource(maxIntervalRetries=1))
    w.step()
    first = w.running()[0]
    w.jobs[first] = {**w.jobs[first], **FAILED}
    plan = w.step()
    assert [e.reason for e in plan.events] == ["IntervalRetried"]
    retry = [c.name for c in plan.children]
    assert retry == [first + "-r1"]
    w.jobs[retry[0]] = {**w.jobs[retry[0]], **FAILED}
    plan = w.step()
    assert [e.reason for e in plan.events] == ["MemberFailed"]
    assert plan.status["membersFailed"] == 1


def test_a_missing_job_of_a_running_member_is_created_again() -> None:
    w = World(resource())
    w.step()
    lost = w.running()[0]
    del w.jobs[lost]  # e.g. created after the state was saved, then the operator crashed
    plan = w.step()
    assert [c.name for c in plan.children] == [lost]


def test_invalid_spec_and_changed_spec_are_reported_not_raised() -> None:
    bad = resource(populationSize=1)
    plan = reconcile_pbt(bad, Observed(now=T0), CONFIG)
    assert plan.phase == "Failed" and "spec.populationSize" in plan.status["message"]
    assert plan.children == () and plan.work is None

    w = World(resource())
    w.step()
    w.res["spec"]["parallelism"] = 3  # allowed: one more Job at once
    plan = w.step()
    assert len(plan.children) == 1 and len(w.running()) == 3
    w.res["spec"]["perturbationInterval"] = 999
    plan = w.step()
    # Refused: the population goes on with the spec it started with (not rewritten).
    assert plan.children == () and plan.work is not None and plan.work.write_spec is None
    assert w.spec is not None and w.spec["spec"]["perturbationInterval"] == 256
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "ImmutableFieldChanged"
    assert degraded["message"].startswith("spec.perturbationInterval cannot change")


def test_an_interval_whose_pod_cannot_start_degrades_the_population() -> None:
    """What the pods say reaches the population through its Jobs (children.with_pods)."""
    w = World(resource())
    w.step()
    first, *others = sorted(w.running())
    w.jobs[first] = with_pods(
        w.jobs[first],
        PodReport(pods=1, problem=("Unschedulable", "pod p: 0/3 nodes are available")),
    )
    for name in others:
        w.jobs[name] = with_pods(
            w.jobs[name], PodReport(pods=1, problem=("Unschedulable", "pod q: 0/3 nodes"))
        )
    plan = w.step()
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (plan.phase, degraded["status"], degraded["reason"]) == ("Running", "True",
                                                                    "Unschedulable")  # fmt: skip
    assert degraded["message"].startswith(f"Job {first}: pod p: 0/3 nodes are available")
    more = f"; {len(others)} more Job(s) cannot start either" if others else ""
    assert degraded["message"].endswith(more)
    assert [e.reason for e in plan.events if e.type == "Warning"] == ["Unschedulable"]


def test_a_stored_spec_without_a_since_added_defaulted_field_is_no_change() -> None:
    """population-spec.json written by an older operator lacks the fields added since (and
    spells out defaults the new model may have dropped): the population goes on."""
    w = World(resource())
    w.step()
    assert w.spec is not None
    w.spec["spec"].pop("mode")  # a defaulted field this "older" spec did not have
    w.spec["spec"]["template"].pop("device")
    w.res["metadata"]["generation"] = 2
    w.res["spec"]["mode"] = "async"  # the default, as the API server writes it
    plan = w.step()
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert degraded["status"] == "False" and plan.status["observedGeneration"] == 2


def test_a_refused_edit_keeps_observed_generation_and_a_revert_applies() -> None:
    w = World(resource())
    w.step()
    w.res["metadata"]["generation"] = 2
    w.res["spec"]["populationSize"] = 5
    w.res["spec"]["parallelism"] = 3  # mutable: applied even alongside a refused edit
    plan = w.step()
    conds = {c["type"]: c for c in plan.status["conditions"]}
    assert conds["Degraded"]["reason"] == "ImmutableFieldChanged"
    assert conds["Degraded"]["message"].startswith("spec.populationSize cannot change")
    assert plan.status["observedGeneration"] == 1 and conds["Degraded"]["observedGeneration"] == 2
    assert len(w.running()) == 3 and plan.status["phase"] == "Running"
    assert [e.reason for e in plan.events] == ["ImmutableFieldChanged"]
    assert w.step().events == ()  # one Event per transition
    w.res["metadata"]["generation"] = 3
    w.res["spec"]["populationSize"] = 3
    plan = w.step()
    assert plan.status["observedGeneration"] == 3
    assert {c["type"]: c for c in plan.status["conditions"]}["Degraded"]["status"] == "False"


def test_a_stale_status_from_an_older_operator_does_not_break_the_population() -> None:
    w = World(resource())
    w.step()
    status = w.res["status"]
    status["retiredField"] = [1, 2]  # an older operator's field, since removed
    status["bestFitness"] = "n/a"  # retyped since
    for cond in status["conditions"]:
        cond.pop("observedGeneration", None)
    w.res["metadata"]["generation"] = 4  # edits the status never saw, since reverted
    plan = w.step()
    assert plan.phase == "Running" and plan.status["observedGeneration"] == 4
    assert "retiredField" not in plan.status and plan.status_patch["retiredField"] is None
    assert all(c["observedGeneration"] == 4 for c in plan.status["conditions"])


def test_a_stored_spec_without_a_state_never_started_so_any_edit_applies() -> None:
    """The spec is saved before the state: a spec alone is a population that crashed before
    it started."""
    w = World(resource())
    w.spec = pbt_population("pop", populationSize=5)
    plan = w.step()
    assert plan.work is not None and plan.work.write_spec is not None
    assert w.spec["spec"]["populationSize"] == 3 and len(w.running()) == 2
    assert {c["type"]: c for c in plan.status["conditions"]}["Degraded"]["status"] == "False"
