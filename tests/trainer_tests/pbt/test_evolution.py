"""PBT exploit/explore: priors, donors, sync/async, parallelism, retries, stopping."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stevie_api.common import ParamSpec, ParamValue
from stevie_trainer.pbt import evolution
from stevie_trainer.pbt.evolution import (
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
from stevie_trainer.pbt.state import (
    Population,
    phase,
    rank,
)
from support.pbt import by_member, make_spec, ready_population, simulate

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_pbt_beats_the_same_population_with_exploitation_off(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same members, same toy fitness (which also rises with the interval): with
    exploit/explore the population ends better than with every member left alone."""
    spec = make_spec(populationSize=8, parallelism=4, stopping={"maxIntervals": 12})
    pbt, _, _ = simulate(spec, seed)
    with monkeypatch.context() as patch:
        patch.setattr(evolution, "quantile_size", lambda ranked, fraction: 0)
        alone, _, _ = simulate(spec, seed)
    assert not alone.events and len(pbt.events) >= 12
    assert [m.fitness_history[0] for m in pbt.members] == [
        m.fitness_history[0] for m in alone.members
    ]
    final_pbt = [m.fitness_history[-1] for m in pbt.members]
    final_alone = [m.fitness_history[-1] for m in alone.members]
    # The best member may have been best from the start (then it never exploits); the
    # population as a whole moves up to it.
    assert max(final_pbt) >= max(final_alone)
    assert np.median(final_pbt) > np.median(final_alone) + 0.3


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
