"""Trainer commands of a PBT population (what its Jobs or local processes run)::

    python -m stevie_trainer pbt-interval --population-spec F --member M --interval I \
        --hyperparameters-json '{"learning_rate": 3e-4}' [--init CHECKPOINT] --out URI
    python -m stevie_trainer pbt-finish --population-spec F --state POPULATION_JSON --out URI

``--population-spec`` is a PBTPopulation resource (or its spec) as JSON or YAML, a path or URI.
``pbt-interval`` has a warm-up (``stevie run`` forks interval processes from a warmed one).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stevie_api.pbt import PBTPopulationSpec

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pbt-interval`` and ``pbt-finish``."""
    p = sub.add_parser("pbt-interval", help="train one interval of one PBT member")
    p.add_argument("--population-spec", required=True, help="PBTPopulation (or spec) file/URI")
    p.add_argument("--member", type=int, required=True, help="member index")
    p.add_argument("--interval", type=int, required=True, help="interval number (from 0)")
    p.add_argument("--hyperparameters-json", default="{}", help="hyperparameter overrides as JSON")
    p.add_argument("--init", help="checkpoint folder to start from (default: a fresh model)")
    p.add_argument("--out", required=True, help="the interval's folder or URI")
    p.set_defaults(func=_interval, warm_up=_warm_up)
    f = sub.add_parser("pbt-finish", help="summary, plots and test backtest of a population")
    f.add_argument("--population-spec", required=True, help="PBTPopulation (or spec) file/URI")
    f.add_argument("--state", required=True, help="population.json kept by the controller")
    f.add_argument("--out", required=True, help="the population's folder or URI")
    f.set_defaults(func=_finish)


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--hyperparameters-json is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError("--hyperparameters-json must be a JSON object")
    return value


def _spec(args: argparse.Namespace) -> tuple[PBTPopulationSpec, str | None]:
    from stevie_api.pbt import PBTPopulationSpec
    from stevie_trainer.common import storage
    from stevie_trainer.common.specfile import load_spec_text

    text = storage.read_text(args.population_spec)
    return load_spec_text(text, args.population_spec, PBTPopulationSpec)


def _interval(args: argparse.Namespace) -> int:
    from stevie_trainer.pbt.member import train_interval

    spec, name = _spec(args)
    params = _params(args.hyperparameters_json)
    result = train_interval(
        spec, args.member, args.interval, params, args.init or None, args.out, name=name
    )
    event = {k: result[k] for k in ("member", "interval", "fitness", "timesteps")}
    print(json.dumps({"event": "interval", **event}), flush=True)
    return 0


def _warm_up(args: argparse.Namespace) -> None:
    """What every interval of this population does first, done once before forking."""
    from stevie_trainer.pbt.member import warm_up

    spec, name = _spec(args)
    warm_up(spec, name)


def _finish(args: argparse.Namespace) -> int:
    from stevie_trainer.common import storage
    from stevie_trainer.pbt.finish import finish_population
    from stevie_trainer.pbt.state import Population

    spec, _ = _spec(args)
    state = json.loads(storage.read_text(args.state))
    population = Population.from_dict(state)
    finish_population(
        spec, population, args.out, child_seconds=dict(state.get("child_seconds") or {})
    )
    return 0
