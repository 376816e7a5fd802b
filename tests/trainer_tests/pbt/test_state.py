"""The PBT population state: child names, JSON round trips, lineage and schedules."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from stevie_trainer.pbt.evolution import (
    decision_rng,
    new_population,
    next_actions,
    record_result,
)
from stevie_trainer.pbt.state import (
    Population,
    interval_name,
    running_actions,
    schedule,
    summary,
)
from support.pbt import make_spec, simulate

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------- names


def test_interval_names_are_deterministic_dns_labels() -> None:
    assert interval_name("demo", 3, 7) == "demo-m3-i7"
    assert interval_name("demo", 3, 7, attempt=2) == "demo-m3-i7-r2"
    long_a = "p" * 80
    long_b = "p" * 79 + "q"
    names = {interval_name(n, 12, 345, 1) for n in (long_a, long_b, "a.b", "a-b")}
    assert len(names) == 4
    for n in names:
        assert len(n) <= 63 and DNS_LABEL.match(n), n
        assert n.endswith("-m12-i345-r1")
    assert interval_name(long_a, 1, 2) == interval_name(long_a, 1, 2)


# --------------------------------------------------------------------------- determinism, state


def test_decisions_are_deterministic_for_a_seed() -> None:
    spec = make_spec(populationSize=6, parallelism=2, stopping={"maxIntervals": 6})
    a = simulate(spec, 9, order_seed=1)
    b = simulate(spec, 9, order_seed=1)
    assert a[1] == b[1] and a[0].to_dict() == b[0].to_dict()
    c = simulate(spec, 10, order_seed=1)
    assert c[1] != a[1]


def test_json_round_trip_reproduces_next_actions() -> None:
    spec = make_spec(populationSize=6, parallelism=3, stopping={"maxIntervals": 6})
    rng = np.random.default_rng(5)
    pop = new_population("demo", spec, rng)
    order = np.random.default_rng(0)
    for checked in range(12):
        running = [m for m in pop.members if m.status == "running"]
        if running:
            m = running[int(order.integers(len(running)))]
            record_result(pop, m.index, m.intervals_done, float(order.normal()), f"u{m.index}")
        copy = Population.from_dict(json.loads(json.dumps(pop.to_dict())))
        assert copy == pop
        acts = next_actions(pop, spec, np.random.default_rng(checked))
        assert next_actions(copy, spec, np.random.default_rng(checked)) == acts
        assert copy == pop
    assert pop.exploits > 0
    assert running_actions(pop) == running_actions(
        Population.from_dict(json.loads(json.dumps(pop.to_dict())))
    )


def test_record_result_is_idempotent_and_running_actions_relaunch() -> None:
    spec = make_spec(populationSize=3, parallelism=2)
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    launched = next_actions(pop, spec, rng)
    assert running_actions(pop) == launched
    assert record_result(pop, 0, 0, 1.0, "c") is True
    assert record_result(pop, 0, 0, 1.0, "c") is False  # duplicate observation
    assert record_result(pop, 2, 0, 1.0, "c") is False  # not running
    assert record_result(pop, 1, 0, float("nan"), "c") is True
    assert pop.intervals_completed == 2 and math.isfinite(pop.members[1].fitness_history[0])


# --------------------------------------------------------------------------- summary


def test_summary_follows_lineage() -> None:
    spec = make_spec(populationSize=6, parallelism=3, stopping={"maxIntervals": 6})
    pop, _, _ = simulate(spec, 3, order_seed=2)
    out = summary(pop)
    json.dumps(out)
    best = out["best"]
    all_results = [f for m in pop.members for f in m.fitness_history]
    assert best["fitness"] == max(all_results)
    assert best["checkpoint"].startswith("file:///ck/demo-m")
    steps = best["schedule"]
    assert len(steps) == best["interval"] + 1  # one entry per interval the weights trained
    assert steps[-1]["member"] == best["member"] and steps[-1]["fitness"] == best["fitness"]
    assert [s["hyperparameters"] for s in steps][-1] == best["hyperparameters"]
    assert len(out["top"]) == 5 and out["top"][0]["fitness"] >= out["top"][-1]["fitness"]
    assert len(out["members"]) == 6 and out["exploits"] == pop.exploits > 0
    # At least one best-schedule step came from a copied member when the best one exploited.
    copied = [
        e for e in pop.events if e.member == best["member"] and e.interval <= best["interval"]
    ]
    if copied:
        assert {s["member"] for s in steps} != {best["member"]}


def test_schedule_of_a_member_that_copied() -> None:
    spec = make_spec(populationSize=2, parallelism=2, quantileFraction=0.5)
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    next_actions(pop, spec, rng)
    record_result(pop, 0, 0, 1.0, "a0")
    record_result(pop, 1, 0, 0.0, "b0")
    next_actions(pop, spec, rng)  # 1 copies 0
    record_result(pop, 1, 1, 2.0, "b1")
    steps = schedule(pop, 1, 1)
    assert [(s["member"], s["interval"]) for s in steps] == [(0, 0), (1, 1)]
    assert summary(pop)["best"]["member"] == 1


def test_decision_rng_depends_on_seed_and_progress() -> None:
    spec = make_spec(populationSize=3)
    pop = new_population("demo", spec, np.random.default_rng(0))
    draw = decision_rng(1, pop).random()
    assert decision_rng(1, pop).random() == draw
    assert decision_rng(2, pop).random() != draw
    pop.intervals_completed += 1
    assert decision_rng(1, pop).random() != draw
