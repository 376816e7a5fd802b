"""Population-based training: priors, exploit/explore and the pure controller logic.

Torch-free (the operator imports it). Everything here is deterministic given the state and a
``numpy.random.Generator``; nothing trains, sleeps or touches storage. The state
(:class:`~stevie_trainer.pbt.state.Population`) is JSON-serialisable, so an operator can
persist it after each decision and a restarted operator continues where it left off.

Typical loop (operator or local runner)::

    pop = new_population(name, spec, rng)
    while True:
        for action in next_actions(pop, spec, rng):   # mutates pop: persist it, then act
            ...launch action.name / finish on "done" / "fail"
        ...when a child finishes: record_result(pop, m, i, fitness(val_metrics, spec.fitness),
           checkpoint_uri) or record_failure(pop, spec, m, i)

After a crash between persisting the state and creating the children, ``running_actions(pop)``
returns the launches to (re)create; child names are deterministic, so creating them is
idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from stevie_api.common import ParamSpec, ParamValue
from stevie_api.pbt import PBTPopulationSpec
from stevie_trainer.pbt.fitness import WORST_FITNESS, finite_float
from stevie_trainer.pbt.state import (
    Action,
    LineageEvent,
    Member,
    Population,
    launch_action,
    rank,
)

__all__ = [
    "clip_to_prior",
    "decision_rng",
    "explore",
    "initial_hyperparameters",
    "new_population",
    "next_actions",
    "perturb",
    "quantile_size",
    "record_failure",
    "record_result",
    "sample_prior",
]

# --------------------------------------------------------------------------- priors


def _bounds(prior: ParamSpec) -> tuple[float, float]:
    assert prior.low is not None and prior.high is not None
    return prior.low, prior.high


def clip_to_prior(prior: ParamSpec, value: float) -> ParamValue:
    """A number mapped into a numeric prior: clipped into [low, high], ints rounded."""
    low, high = _bounds(prior)
    x = min(max(value, low), high) if not math.isnan(value) else low
    if prior.type == "int":
        return int(min(max(round(x), low), high))
    return float(x)


def sample_prior(prior: ParamSpec, rng: np.random.Generator) -> ParamValue:
    """One draw from a prior: uniform, log-uniform (``log``), integer or categorical."""
    if prior.type == "categorical":
        choices = prior.choices or []
        return choices[int(rng.integers(len(choices)))]
    low, high = _bounds(prior)
    if prior.type == "int":
        if prior.log:
            x = math.floor(math.exp(rng.uniform(math.log(low), math.log(high + 1))))
            return clip_to_prior(prior, x)
        return int(rng.integers(int(low), int(high) + 1))
    if prior.log:
        return clip_to_prior(prior, math.exp(rng.uniform(math.log(low), math.log(high))))
    return clip_to_prior(prior, float(rng.uniform(low, high)))


def _choice_index(choices: list[ParamValue], value: ParamValue) -> int | None:
    for i, choice in enumerate(choices):
        if type(choice) is type(value) and choice == value:
            return i
    return None


def perturb(
    value: ParamValue | None,
    prior: ParamSpec,
    factor: float,
    rng: np.random.Generator,
) -> tuple[ParamValue, str]:
    """Perturb one value: numbers are multiplied by ``factor`` and mapped into the prior (an
    int that rounding would leave unchanged moves by 1); a categorical moves to a neighbouring
    choice. A value that does not fit the prior's type is resampled. Returns (value, what)."""
    if prior.type == "categorical":
        choices = prior.choices or []
        idx = None if value is None else _choice_index(choices, value)
        if idx is None:
            return sample_prior(prior, rng), "resample"
        neighbours = [j for j in (idx - 1, idx + 1) if 0 <= j < len(choices)]
        if not neighbours:
            return choices[idx], "keep"
        j = neighbours[int(rng.integers(len(neighbours)))]
        return choices[j], f"choice{j - idx:+d}"
    number = finite_float(value)
    if number is None:
        return sample_prior(prior, rng), "resample"
    x = clip_to_prior(prior, number * factor)
    if prior.type == "int" and x == round(number) and factor != 1:
        x = clip_to_prior(prior, round(number) + (1.0 if factor > 1 else -1.0))
    return x, f"x{factor:g}"


def explore(
    params: Mapping[str, ParamValue],
    mutations: Mapping[str, ParamSpec],
    rng: np.random.Generator,
    resample_probability: float,
    factors: list[float],
) -> tuple[dict[str, ParamValue], dict[str, str]]:
    """Explore every mutable hyperparameter: with probability ``resample_probability`` resample
    it from its prior, else :func:`perturb` it by a factor drawn from ``factors``. Returns the
    new hyperparameters (other keys kept) and what happened to each mutable one."""
    out = dict(params)
    ops: dict[str, str] = {}
    for key in sorted(mutations):
        prior = mutations[key]
        resample = bool(rng.random() < resample_probability)
        factor = float(factors[int(rng.integers(len(factors)))])
        if resample:
            out[key], ops[key] = sample_prior(prior, rng), "resample"
        else:
            out[key], ops[key] = perturb(params.get(key), prior, factor, rng)
    return out, ops


def initial_hyperparameters(
    spec: PBTPopulationSpec, rng: np.random.Generator
) -> list[dict[str, ParamValue]]:
    """One dict per member: each mutable hyperparameter drawn from its prior. They are overrides
    of the template's hyperparameters (``spec.template.with_hyperparameters(params)``)."""
    mutations = spec.hyperparam_mutations
    return [
        {key: sample_prior(mutations[key], rng) for key in sorted(mutations)}
        for _ in range(spec.population_size)
    ]


def new_population(name: str, spec: PBTPopulationSpec, rng: np.random.Generator) -> Population:
    """A fresh population: every member pending its interval 0 with sampled hyperparameters."""
    params = initial_hyperparameters(spec, rng)
    return Population(
        name=name, members=[Member(index=i, hyperparameters=p) for i, p in enumerate(params)]
    )


def decision_rng(seed: int, population: Population) -> np.random.Generator:
    """A generator seeded by ``seed`` and the state's progress: replaying a reconcile from the
    same persisted state (after a crash) makes the same decisions."""
    failures = sum(m.retries for m in population.members)
    return np.random.default_rng([seed, population.intervals_completed, failures])


# --------------------------------------------------------------------------- results


def record_result(
    population: Population,
    member: int,
    interval: int,
    fitness_value: float,
    checkpoint: str | None,
) -> bool:
    """Record that ``member`` finished ``interval`` with this fitness and output checkpoint.

    Idempotent: a result for an interval that is not the member's running one is ignored
    (returns False). A non-finite fitness is recorded as WORST_FITNESS.
    """
    m = population.members[member]
    if m.status != "running" or m.intervals_done != interval:
        return False
    value = float(fitness_value)
    m.fitness_history.append(value if math.isfinite(value) else WORST_FITNESS)
    m.param_history.append(dict(m.hyperparameters))
    m.checkpoint_history.append(checkpoint)
    m.checkpoint = checkpoint
    m.intervals_done += 1
    m.retries = 0
    m.status = "ready"
    population.intervals_completed += 1
    return True


def record_failure(
    population: Population, spec: PBTPopulationSpec, member: int, interval: int
) -> bool:
    """Record that ``member``'s ``interval`` failed: it is retried with the same inputs up to
    ``maxIntervalRetries`` times, then the member is marked failed (returns True then).
    A failure of an interval that is not running is ignored."""
    m = population.members[member]
    if m.status != "running" or m.intervals_done != interval:
        return False
    m.retries += 1
    if m.retries > spec.max_interval_retries:
        m.status = "failed"
        return True
    m.status = "pending"
    return False


# --------------------------------------------------------------------------- decisions


def quantile_size(ranked: int, fraction: float) -> int:
    """Members in the bottom (and top) quantile of ``ranked`` members: at least 1, at most
    half (0 with a single ranked member: nobody to copy)."""
    return min(max(1, int(ranked * fraction)), ranked // 2)


def _decide(
    population: Population,
    m: Member,
    ranked: list[Member],
    spec: PBTPopulationSpec,
    rng: np.random.Generator,
) -> None:
    """Exploit/explore (bottom quantile) or continue: ``m`` becomes pending its next interval."""
    q = quantile_size(len(ranked), spec.quantile_fraction)
    order = [r.index for r in ranked]
    position = order.index(m.index)
    m.status, m.retries = "pending", 0
    m.init_checkpoint = m.checkpoint
    if q == 0 or position < len(ranked) - q:
        return
    donors = [r for r in ranked[:q] if r.checkpoint is not None and r.index != m.index]
    if not donors:
        return
    donor = donors[int(rng.integers(len(donors)))]
    assert donor.checkpoint is not None
    source = donor.param_history[-1] if donor.param_history else donor.hyperparameters
    new, ops = explore(
        source,
        spec.hyperparam_mutations,
        rng,
        spec.resample_probability,
        spec.perturbation_factors,
    )
    population.events.append(
        LineageEvent(
            interval=m.intervals_done,
            member=m.index,
            copied_from=donor.index,
            copied_interval=donor.intervals_done,
            checkpoint=donor.checkpoint,
            old_params=dict(m.hyperparameters),
            new_params=new,
            reason=f"rank {position + 1}/{len(ranked)} in the bottom {q}",
            old_fitness=m.fitness,
            donor_fitness=donor.fitness,
            explore=ops,
        )
    )
    m.hyperparameters = new
    m.init_checkpoint = donor.checkpoint
    m.parents.append(donor.index)


def next_actions(
    population: Population, spec: PBTPopulationSpec, rng: np.random.Generator
) -> list[Action]:
    """Decide and return what to do next, recording the decisions IN ``population`` (persist it
    before acting on the actions).

    - Members that reached ``maxIntervals`` are done; once any fitness reaches
      ``targetFitness``, nothing more is launched and idle members are done.
    - async: each member that finished an interval is ranked against the latest fitness of
      every non-failed member with a result; in the bottom quantile it exploits a member
      sampled from the top quantile that has a checkpoint, then explores; else it continues.
    - sync: nothing is decided until no member is pending or running (every non-failed member
      finished the same interval); then the population is ranked once.
    - Pending members (fewest intervals first) are launched into the free slots of
      ``parallelism``. With nothing left to run: one ``done`` action (``fail`` if every member
      failed).
    """
    members = population.members
    target = spec.stopping.target_fitness
    if population.stopped is None and target is not None:
        best = max((f for m in members for f in m.fitness_history), default=None)
        if best is not None and best >= target:
            population.stopped = f"target fitness {target:g} reached ({best:g})"
    for m in members:
        finished = m.status == "ready" and m.intervals_done >= spec.stopping.max_intervals
        if finished or (m.status in ("ready", "pending") and population.stopped is not None):
            m.status = "done"
    ready = [m for m in members if m.status == "ready"]
    busy = any(m.status in ("pending", "running") for m in members)
    if ready and (spec.mode == "async" or not busy):
        ranked = rank(population)
        for m in ready:
            _decide(population, m, ranked, spec, rng)
    free = spec.parallelism - sum(m.status == "running" for m in members)
    pending = sorted(
        (m for m in members if m.status == "pending"), key=lambda m: (m.intervals_done, m.index)
    )
    actions = [launch_action(population, m) for m in pending[: max(free, 0)]]
    if all(m.status in ("done", "failed") for m in members):
        failed = all(m.status == "failed" for m in members)
        actions.append(Action(kind="fail" if failed else "done"))
    return actions
