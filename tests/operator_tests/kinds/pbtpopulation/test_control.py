"""The PBT controller step (pure; no training) and the interval Jobs it launches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stevie_api.pbt import PBTPopulation, PBTPopulationSpec
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.pbtpopulation.children import (
    finish_job,
    interval_job,
    interval_uri,
    population_dir,
)
from stevie_operator.kinds.pbtpopulation.control import (
    Outcome,
    apply_outcome,
    decide,
    load_state,
    population_status,
    save_state,
)
from stevie_trainer.pbt.evolution import new_population
from stevie_trainer.pbt.state import Population
from support.specs import pbt_population


def spec(**overrides: Any) -> PBTPopulationSpec:
    return PBTPopulationSpec.model_validate(pbt_population(**overrides)["spec"])


def result(member: int, interval: int, fit: float, folder: str) -> dict[str, object]:
    return {"status": "succeeded", "member": member, "interval": interval, "fitness": fit,
            "checkpoint": folder}  # fmt: skip


def ok(pop_dir: str, member: int, interval: int, fit: float) -> Outcome:
    folder = interval_uri(pop_dir, member, interval)
    return Outcome(f"c{member}{interval}", member, interval, True,
                   result(member, interval, fit, folder), seconds=2.0)  # fmt: skip


def started(s: PBTPopulationSpec) -> Population:
    pop = new_population("p", s, np.random.default_rng(0))
    actions, _ = decide(pop, s)
    assert [a.member for a in actions] == [0, 1]  # parallelism 2
    return pop


def test_results_are_recorded_and_the_worst_member_exploits_the_best() -> None:
    s = spec(parallelism=3)
    pop = new_population("p", s, np.random.default_rng(0))
    actions, _ = decide(pop, s)
    assert [a.init_checkpoint for a in actions] == [None, None, None]
    seconds: dict[str, float] = {}
    for m, fit in ((0, 0.5), (1, -0.2), (2, 0.1)):
        assert apply_outcome(pop, s, ok("/pop", m, 0, fit), seconds) == []
    assert seconds == {"c00": 2.0, "c10": 2.0, "c20": 2.0}
    actions, events = decide(pop, s)
    by_member = {a.member: a for a in actions}
    assert by_member[1].init_checkpoint == interval_uri("/pop", 0, 0)  # copied the best
    assert by_member[0].init_checkpoint == interval_uri("/pop", 0, 0)  # its own
    assert by_member[2].init_checkpoint == interval_uri("/pop", 2, 0)
    assert [e.reason for e in events] == ["Exploit"]
    assert "member 1 (-0.2000) copied member 0 (0.5000)" in events[0].message
    assert pop.events[0].copied_from == 0


def test_a_stale_or_repeated_outcome_changes_nothing() -> None:
    s = spec()
    pop = started(s)
    apply_outcome(pop, s, ok("/pop", 0, 0, 0.3), {})
    before = pop.to_dict()
    apply_outcome(pop, s, ok("/pop", 0, 0, 0.9), {})  # the same child seen twice
    apply_outcome(pop, s, Outcome("x", 1, 5, False), {})  # not its running interval
    assert pop.to_dict() == before


def test_failed_intervals_are_retried_then_the_member_fails() -> None:
    s = spec(maxIntervalRetries=1)
    pop = started(s)
    events = apply_outcome(pop, s, Outcome("c10", 1, 0, False, message="exit code 1"), {})
    assert [e.reason for e in events] == ["IntervalRetried"] and "exit code 1" in events[0].message
    actions, _ = decide(pop, s)
    retry = next(a for a in actions if a.member == 1)
    assert retry.attempt == 1 and retry.name is not None and retry.name.endswith("-r1")
    # Exit 0 without a result.json counts as a failure too.
    events = apply_outcome(pop, s, Outcome(retry.name, 1, 0, True, None), {})
    assert [e.type for e in events] == ["Warning"] and events[0].reason == "MemberFailed"
    assert pop.members[1].status == "failed"


def command(job: dict[str, Any]) -> list[str]:
    """What the Job's container runs after ``python -m stevie_trainer``."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    return [*container["command"][3:], *container["args"]]


def test_launch_arguments_name_the_interval_and_its_start() -> None:
    res = PBTPopulation.model_validate(pbt_population("p"))
    config = OperatorConfig(storage_uri="file:///data")
    folder = population_dir(res, "default", config)
    s = res.spec
    pop = started(s)
    apply_outcome(pop, s, ok(folder, 0, 0, 0.3), {})
    (fresh,), _ = decide(pop, s)  # one free slot: member 2's first interval goes first
    job = interval_job(res, "default", fresh, config)
    args = command(job)
    assert job["metadata"]["name"] == "p-m2-i0"
    assert args[:3] == ["pbt-interval", "--population-spec", f"{folder}/population-spec.json"]
    assert args[args.index("--member") + 1] == "2" and "--init" not in args
    assert args[-2:] == ["--out", interval_uri(folder, 2, 0)]
    apply_outcome(pop, s, ok(folder, 1, 0, 0.1), {})
    (cont,), _ = decide(pop, s)
    args = command(interval_job(res, "default", cont, config))
    assert args[args.index("--member") + 1] == "0" and args[args.index("--interval") + 1] == "1"
    assert args[args.index("--init") + 1] == interval_uri(folder, 0, 0)
    finish = command(finish_job(res, "default", config))
    assert finish[0] == "pbt-finish" and finish[-2:] == ["--out", folder]


def test_state_round_trips_through_storage(tmp_path: Path) -> None:
    s = spec()
    pop = started(s)
    apply_outcome(pop, s, ok(str(tmp_path), 0, 0, 0.3), {})
    save_state(str(tmp_path), pop, {"c00": 1.5})
    loaded = load_state(str(tmp_path))
    assert loaded is not None
    assert loaded[0].to_dict() == pop.to_dict() and loaded[1] == {"c00": 1.5}
    assert load_state(str(tmp_path / "none")) is None


def test_status_summarises_the_population() -> None:
    s = spec()
    pop = started(s)
    apply_outcome(pop, s, ok("/pop", 0, 0, 0.3), {})
    apply_outcome(pop, s, ok("/pop", 1, 0, 0.6), {})
    summary = {
        "uri": "/pop/pbt_summary.json",
        "best": {"model": "/pop/best/model.zip",
                 "test": {"best member": {"sharpe": 1.5, "max_drawdown": -0.2, "trades": 4}}},
    }  # fmt: skip
    status = population_status(pop, summary)
    assert status.phase == "Running" and status.intervals_completed == 2
    assert (status.best_member, status.best_fitness) == (1, 0.6)
    assert [t.member for t in status.top] == [1, 0]
    assert status.test is not None and status.test.sharpe == 1.5
    assert status.test.max_drawdown == 0.2  # the API's positive fraction
    assert status.summary_uri == "/pop/pbt_summary.json"
    assert status.best_model_uri == "/pop/best/model.zip"
