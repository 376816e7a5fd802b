"""PBT controller logic: fitness, exploit/explore, sync/async, parallelism, retries, state."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stevie_api.common import ParamSpec, ParamValue
from stevie_api.pbt import FitnessWeights, PBTPopulationSpec
from stevie_trainer.pbt.evolution import (
    decision_rng,
    explore,
    initial_hyperparameters,
    new_population,
    next_actions,
    perturb,
    quantile_size,
    record_failure,
    record_result,
    sample_prior,
)
from stevie_trainer.pbt.fitness import fitness, fitness_terms
from stevie_trainer.pbt.state import (
    Action,
    Population,
    interval_name,
    phase,
    rank,
    running_actions,
    schedule,
    summary,
)

DATA = {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def make_spec(**fields: Any) -> PBTPopulationSpec:
    return PBTPopulationSpec.model_validate({"template": {"data": DATA}, **fields})


def score(action: Action) -> float:
    """A deterministic fitness that prefers learning_rate near 1e-3 and gamma near 0.99."""
    lr = float(action.hyperparameters["learning_rate"])
    gamma = float(action.hyperparameters["gamma"])
    return -abs(math.log10(lr) + 3.0) - 10 * abs(gamma - 0.99) + 0.01 * (action.interval or 0)


def simulate(
    spec: PBTPopulationSpec,
    seed: int = 0,
    *,
    fail: Callable[[Action], bool] = lambda a: False,
    order_seed: int = 0,
    name: str = "demo",
    check: Callable[[Population], None] | None = None,
) -> tuple[Population, list[Action], int]:
    """Run the controller against children that finish in a random order."""
    rng = np.random.default_rng(seed)
    order = np.random.default_rng(order_seed)
    pop = new_population(name, spec, rng)
    running: list[Action] = []
    log: list[Action] = []
    most = 0
    for _ in range(10_000):
        actions = next_actions(pop, spec, rng)
        log.extend(actions)
        running += [a for a in actions if a.kind == "launch"]
        most = max(most, len(running))
        assert len(running) == sum(m.status == "running" for m in pop.members)
        if check is not None:
            check(pop)
        if any(a.kind in ("done", "fail") for a in actions):
            return pop, log, most
        assert running, "stalled: nothing running and not finished"
        a = running.pop(int(order.integers(len(running))))
        assert a.member is not None and a.interval is not None
        if fail(a):
            record_failure(pop, spec, a.member, a.interval)
        else:
            record_result(pop, a.member, a.interval, score(a), f"file:///ck/{a.name}")
    raise AssertionError("did not finish")


def ready_population(
    spec: PBTPopulationSpec, fitnesses: list[float], checkpoints: list[bool] | None = None
) -> Population:
    """Every member finished interval 0 with the given fitness (and checkpoint or not)."""
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    for m, f in zip(pop.members, fitnesses, strict=True):
        m.status = "running"
        has = checkpoints is None or checkpoints[m.index]
        record_result(pop, m.index, 0, f, f"file:///ck/m{m.index}" if has else None)
    return pop


# --------------------------------------------------------------------------- fitness


def test_fitness_default_weights_and_terms() -> None:
    metrics = {"sharpe": 2.0, "total_return": 0.1, "win_rate": 0.6, "stability": 0.9}
    t = fitness_terms(metrics)
    assert t["sharpe"] == pytest.approx(math.tanh(1.0))
    assert t["mean_profit"] == pytest.approx(math.tanh(1.0))
    assert (t["win_rate"], t["stability"]) == (0.6, 0.9)
    expected = 0.4 * math.tanh(1) + 0.3 * math.tanh(1) + 0.2 * 0.6 + 0.1 * 0.9
    assert fitness(metrics) == pytest.approx(expected)
    assert fitness(metrics, FitnessWeights()) == pytest.approx(expected)
    only_sharpe = fitness(metrics, {"sharpe": 1.0})
    assert only_sharpe == pytest.approx(math.tanh(1.0))
    # An explicit mean profit (over several episodes) wins over the total return.
    assert fitness_terms({**metrics, "mean_profit": -0.1})["mean_profit"] == pytest.approx(
        math.tanh(-1.0)
    )


def test_fitness_missing_and_nan_count_as_worst() -> None:
    worst = fitness({})
    assert worst == pytest.approx(-0.4 - 0.3 + 0.0 - 0.1)
    bad: dict[str, Any] = {
        "sharpe": float("nan"),
        "total_return": None,
        "win_rate": float("inf"),
        "stability": "x",
    }
    assert fitness(bad) == pytest.approx(worst)
    assert not math.isnan(fitness({"sharpe": float("nan")}))
    # Any real value beats the worst; bounded terms.
    assert fitness({"sharpe": -50.0, "total_return": -0.99}) >= worst
    assert -1 <= fitness({"sharpe": 1e9, "total_return": 1e9, "win_rate": 5, "stability": 2}) <= 1
    # A steady decline is not rewarded as stability.
    assert fitness_terms({"stability": 0.9, "total_return": -0.2})["stability"] == -0.9


def test_fitness_is_monotonic_in_each_metric() -> None:
    base = {"sharpe": 0.5, "total_return": 0.02, "win_rate": 0.5, "stability": 0.5}
    for key, step in (("sharpe", 0.5), ("total_return", 0.05), ("win_rate", 0.1)):
        assert fitness({**base, key: base[key] + step}) > fitness(base)


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


# --------------------------------------------------------------------------- priors


def test_initial_hyperparameters_follow_priors() -> None:
    spec = make_spec(
        populationSize=400,
        hyperparamMutations={
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "n_epochs": {"type": "int", "low": 1, "high": 20},
            "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        },
    )
    params = initial_hyperparameters(spec, np.random.default_rng(1))
    assert len(params) == 400
    assert params == initial_hyperparameters(spec, np.random.default_rng(1))
    lrs = np.log10([float(p["learning_rate"]) for p in params])
    assert lrs.min() >= -5 and lrs.max() <= -1
    assert abs(float(np.median(lrs)) + 3.0) < 0.3  # log-uniform: median at the log midpoint
    assert all(type(p["n_epochs"]) is int and 1 <= int(p["n_epochs"]) <= 20 for p in params)
    assert {p["batch_size"] for p in params} == {32, 64, 128}


numeric_priors = st.builds(
    lambda kind, a, width, log: ParamSpec(
        type=kind,
        low=float(max(1, round(a))) if kind == "int" else a,
        high=float(max(1, round(a)) + max(1, round(width))) if kind == "int" else a + width,
        log=log,
    ),
    st.sampled_from(["float", "int"]),
    st.floats(min_value=1e-6, max_value=1e4),
    st.floats(min_value=1e-3, max_value=1e4),
    st.booleans(),
)
categorical_priors = st.builds(
    lambda choices: ParamSpec(type="categorical", choices=choices),
    st.lists(
        st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans()),
        min_size=1,
        max_size=6,
        unique_by=lambda v: (type(v), v),
    ),
)
values = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=2)
)


@settings(max_examples=300, deadline=None)
@given(
    prior=st.one_of(numeric_priors, categorical_priors),
    value=values,
    factors=st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=4),
    p=st.floats(min_value=0, max_value=1),
    seed=st.integers(0, 2**32 - 1),
)
def test_explore_stays_within_prior(
    prior: ParamSpec, value: ParamValue | None, factors: list[float], p: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    start: dict[str, ParamValue] = {} if value is None else {"x": value}
    out, ops = explore(start, {"x": prior}, rng, p, factors)
    assert prior.contains(out["x"]), (prior, value, out)
    if prior.type == "int":
        assert type(out["x"]) is int
    elif prior.type == "float":
        assert type(out["x"]) is float
    assert set(ops) == {"x"}
    assert prior.contains(sample_prior(prior, rng))


def test_resample_happens_at_about_the_resample_probability() -> None:
    prior = ParamSpec(type="float", low=0.0, high=1.0)
    rng = np.random.default_rng(7)
    n, changed = 4000, 0
    for _ in range(n):
        out, ops = explore({"x": 0.5}, {"x": prior}, rng, 0.3, [1.0])
        changed += out["x"] != 0.5
        assert (ops["x"] == "resample") == (out["x"] != 0.5)
    assert changed / n == pytest.approx(0.3, abs=0.03)


def test_perturb_moves_ints_and_categorical_neighbours() -> None:
    rng = np.random.default_rng(0)
    ints = ParamSpec(type="int", low=1, high=10)
    assert perturb(2, ints, 1.2, rng)[0] == 3  # rounding alone would keep 2
    assert perturb(2, ints, 0.8, rng)[0] == 1
    assert perturb(10, ints, 1.2, rng)[0] == 10  # clipped
    cat = ParamSpec(type="categorical", choices=[32, 64, 128, 256])
    seen = {perturb(64, cat, 1.2, rng)[0] for _ in range(50)}
    assert seen == {32, 128}
    assert {perturb(32, cat, 0.8, rng)[0] for _ in range(20)} == {64}
    floats = ParamSpec(type="float", low=0.1, high=0.4)
    for odd in (None, "x", True, float("nan"), float("inf"), 10**400):
        value, what = perturb(odd, floats, 1.2, rng)
        assert what == "resample" and floats.contains(value)


# --------------------------------------------------------------------------- exploit


def test_quantile_size() -> None:
    assert quantile_size(8, 0.25) == 2
    assert quantile_size(1, 0.25) == 0
    assert quantile_size(2, 0.25) == 1
    assert quantile_size(10, 0.5) == 5


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_bottom_exploits_top_with_checkpoint_only(mode: str) -> None:
    spec = make_spec(populationSize=8, mode=mode, parallelism=8, quantileFraction=0.25)
    fits = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]  # top: 0, 1; bottom: 6, 7
    donors_seen: set[int] = set()
    for seed in range(40):
        # The best member has no checkpoint: it must never be copied.
        pop = ready_population(spec, fits, [False, *[True] * 7])
        before = {m.index: dict(m.hyperparameters) for m in pop.members}
        actions = next_actions(pop, spec, np.random.default_rng(seed))
        assert sorted(a.member for a in actions if a.member is not None) == list(range(8))
        by_member = {a.member: a for a in actions}
        assert {e.member for e in pop.events} == {6, 7}
        for e in pop.events:
            assert e.copied_from == 1 and e.checkpoint == "file:///ck/m1"
            donors_seen.add(e.copied_from)
            a = by_member[e.member]
            assert a.init_checkpoint == "file:///ck/m1" and a.hyperparameters == e.new_params
            assert e.old_params == before[e.member]
            assert pop.members[e.member].parents == [1]
        for m in range(6):  # top and middle continue from their own checkpoint, unchanged
            a = by_member[m]
            assert a.hyperparameters == before[m]
            assert a.init_checkpoint == (None if m == 0 else f"file:///ck/m{m}")
    assert donors_seen == {1}


def test_donor_is_sampled_uniformly_from_the_top_quantile() -> None:
    spec = make_spec(populationSize=8, parallelism=8, quantileFraction=0.5)
    fits = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    counts = dict.fromkeys(range(4), 0)
    for seed in range(100):
        pop = ready_population(spec, fits)
        next_actions(pop, spec, np.random.default_rng(seed))
        assert {e.member for e in pop.events} == {4, 5, 6, 7}
        for e in pop.events:
            counts[e.copied_from] += 1
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60  # ~100 each


def test_no_donor_with_checkpoint_means_continue() -> None:
    spec = make_spec(populationSize=4, parallelism=4)
    pop = ready_population(spec, [0.4, 0.3, 0.2, 0.1], [False, True, True, True])
    actions = next_actions(pop, spec, np.random.default_rng(0))
    assert pop.events == [] and len(actions) == 4
    assert by_member(actions)[3].init_checkpoint == "file:///ck/m3"


def by_member(actions: list[Action]) -> dict[int | None, Action]:
    return {a.member: a for a in actions}


def test_async_ranks_against_latest_fitness_of_members_with_results() -> None:
    spec = make_spec(populationSize=4, parallelism=4)
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    assert len(next_actions(pop, spec, rng)) == 4
    # A single result: nobody to compare with, so it continues (and is relaunched at once).
    record_result(pop, 2, 0, -5.0, "file:///ck/m2-0")
    [a] = next_actions(pop, spec, rng)
    assert (a.member, a.interval, a.init_checkpoint) == (2, 1, "file:///ck/m2-0")
    assert pop.events == []
    # Two results: the worse one exploits the better one, without waiting for the others.
    record_result(pop, 0, 0, 1.0, "file:///ck/m0-0")
    record_result(pop, 2, 1, -6.0, "file:///ck/m2-1")
    actions = next_actions(pop, spec, rng)
    assert [(a.member, a.interval) for a in actions] == [(0, 1), (2, 2)]
    [e] = pop.events
    assert (e.member, e.copied_from, e.copied_interval, e.interval) == (2, 0, 1, 2)
    assert by_member(actions)[2].init_checkpoint == "file:///ck/m0-0"
    assert pop.members[1].status == "running" and pop.members[3].status == "running"


def test_sync_waits_for_every_member() -> None:
    spec = make_spec(populationSize=4, parallelism=4, mode="sync")
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    next_actions(pop, spec, rng)
    for m, f in ((0, 0.4), (1, 0.3), (2, 0.2)):
        record_result(pop, m, 0, f, f"file:///ck/m{m}")
        assert next_actions(pop, spec, rng) == []
    assert pop.events == []
    record_result(pop, 3, 0, 0.1, "file:///ck/m3")
    actions = next_actions(pop, spec, rng)
    assert [(a.member, a.interval) for a in actions] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    [e] = pop.events
    assert (e.member, e.copied_from) == (3, 0)


def test_sync_generations_never_overlap() -> None:
    spec = make_spec(populationSize=6, parallelism=4, mode="sync", stopping={"maxIntervals": 4})

    def check(pop: Population) -> None:
        active = [m for m in pop.members if m.status in ("pending", "running")]
        assert len({m.intervals_done for m in active}) <= 1
        done = [m.intervals_done for m in pop.members if m.status != "failed"]
        assert max(done) - min(done) <= 1

    pop, _, _ = simulate(spec, 3, order_seed=5, check=check)
    assert phase(pop) == "Succeeded" and pop.exploits > 0


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("parallelism", [1, 3, 8])
def test_parallelism_is_never_exceeded(mode: str, parallelism: int) -> None:
    spec = make_spec(
        populationSize=8, parallelism=parallelism, mode=mode, stopping={"maxIntervals": 5}
    )
    pop, log, most = simulate(spec, 1, order_seed=parallelism)
    assert most == parallelism
    assert all(m.status == "done" and m.intervals_done == 5 for m in pop.members)
    assert pop.intervals_completed == 40
    assert [a.kind for a in log].count("launch") == 40 and log[-1].kind == "done"
    assert phase(pop) == "Succeeded"
    # Each (member, interval) child launched exactly once, under its deterministic name.
    names = [a.name for a in log if a.kind == "launch"]
    assert len(set(names)) == 40 and "demo-m7-i4" in names


def test_pbt_improves_on_the_initial_population() -> None:
    spec = make_spec(populationSize=8, parallelism=4, stopping={"maxIntervals": 12})
    pop, _, _ = simulate(spec, 11)
    first = max(m.fitness_history[0] for m in pop.members)
    assert max(m.fitness_history[-1] for m in pop.members) > first


# --------------------------------------------------------------------------- failures


def test_failed_interval_is_retried_then_member_fails() -> None:
    spec = make_spec(populationSize=4, parallelism=4, maxIntervalRetries=2)
    rng = np.random.default_rng(0)
    pop = new_population("demo", spec, rng)
    first = by_member(next_actions(pop, spec, rng))[1]
    for attempt in (1, 2):
        assert record_failure(pop, spec, 1, 0) is False
        [retry] = next_actions(pop, spec, rng)
        assert retry.name == f"demo-m1-i0-r{attempt}" and retry.attempt == attempt
        assert (retry.member, retry.interval) == (1, 0)
        assert retry.hyperparameters == first.hyperparameters
        assert retry.init_checkpoint == first.init_checkpoint
    assert record_failure(pop, spec, 1, 0) is True
    assert pop.members[1].status == "failed"
    assert record_failure(pop, spec, 1, 0) is False  # idempotent
    assert next_actions(pop, spec, rng) == []
    assert phase(pop) == "Running"


def test_failed_members_are_excluded_and_the_population_goes_on() -> None:
    spec = make_spec(populationSize=6, parallelism=3, maxIntervalRetries=1)
    for mode in ("async", "sync"):
        spec = spec.model_copy(update={"mode": mode})
        pop, log, _ = simulate(spec, 2, fail=lambda a: a.member == 0 and a.interval == 1)
        assert pop.members[0].status == "failed" and pop.members[0].intervals_done == 1
        assert all(e.copied_from != 0 or e.interval <= 1 for e in pop.events)
        assert all(m.status == "done" for m in pop.members[1:])
        assert log[-1].kind == "done" and phase(pop) == "Succeeded"
        assert 0 not in [r.index for r in rank(pop)]


def test_failed_member_is_never_a_donor() -> None:
    spec = make_spec(populationSize=4, parallelism=4, maxIntervalRetries=0)
    pop = ready_population(spec, [0.9, 0.5, 0.4, 0.1])
    pop.members[0].status = "running"  # interval 1 of the best member fails for good
    assert record_failure(pop, spec, 0, 1) is True
    next_actions(pop, spec, np.random.default_rng(0))
    assert [(e.member, e.copied_from) for e in pop.events] == [(3, 1)]


def test_all_members_failed_fails_the_population() -> None:
    spec = make_spec(populationSize=3, parallelism=2, maxIntervalRetries=1)
    pop, log, _ = simulate(spec, 0, fail=lambda a: True)
    assert log[-1].kind == "fail" and phase(pop) == "Failed"
    assert [a.kind for a in log].count("launch") == 6  # 3 members x (1 + 1 retry)


# --------------------------------------------------------------------------- stopping


def test_target_fitness_stops_launching() -> None:
    spec = make_spec(
        populationSize=4, parallelism=2, stopping={"maxIntervals": 50, "targetFitness": -0.5}
    )
    pop, log, _ = simulate(spec, 4)
    assert pop.stopped is not None and log[-1].kind == "done"
    assert max(f for m in pop.members for f in m.fitness_history) >= -0.5
    assert all(m.status == "done" for m in pop.members)
    assert pop.intervals_completed < 4 * 50


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
