"""Helpers of the PBT tests: a spec, a toy fitness and a controller simulation in which
children finish in a random order."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from stevie_api.pbt import PBTPopulationSpec
from stevie_trainer.pbt.evolution import new_population, next_actions, record_failure, record_result
from stevie_trainer.pbt.state import Action, Population

__all__ = ["DATA", "by_member", "make_spec", "ready_population", "score", "simulate"]

DATA = {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}


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


def by_member(actions: list[Action]) -> dict[int | None, Action]:
    return {a.member: a for a in actions}
