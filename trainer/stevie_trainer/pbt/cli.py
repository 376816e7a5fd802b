"""Trainer commands of a PBT population (what its Jobs or local processes run)::

    python -m stevie_trainer pbt-interval --population-spec F --member M --interval I \
        --hyperparameters-json '{"learning_rate": 3e-4}' [--init CHECKPOINT] --out URI
    python -m stevie_trainer pbt-finish --population-spec F --state POPULATION_JSON --out URI

``--population-spec`` is a PBTPopulation resource (or its spec) as JSON or YAML, a path or URI.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_pbt_commands", "run_pbt_command"]

COMMANDS = ("pbt-interval", "pbt-finish")


def add_pbt_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pbt-interval", help="train one interval of one PBT member")
    p.add_argument("--population-spec", required=True, help="PBTPopulation (or spec) file/URI")
    p.add_argument("--member", type=int, required=True, help="member index")
    p.add_argument("--interval", type=int, required=True, help="interval number (from 0)")
    p.add_argument("--hyperparameters-json", default="{}", help="hyperparameter overrides as JSON")
    p.add_argument("--init", help="checkpoint folder to start from (default: a fresh model)")
    p.add_argument("--out", required=True, help="the interval's folder or URI")
    f = sub.add_parser("pbt-finish", help="summary, plots and test backtest of a population")
    f.add_argument("--population-spec", required=True, help="PBTPopulation (or spec) file/URI")
    f.add_argument("--state", required=True, help="population.json kept by the controller")
    f.add_argument("--out", required=True, help="the population's folder or URI")


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--hyperparameters-json is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError("--hyperparameters-json must be a JSON object")
    return value


def run_pbt_command(args: argparse.Namespace) -> int:
    from stevie_api.pbt import PBTPopulationSpec
    from stevie_trainer.common import storage
    from stevie_trainer.common.specfile import load_spec_text

    text = storage.read_text(args.population_spec)
    spec, name = load_spec_text(text, args.population_spec, PBTPopulationSpec)
    if args.command == "pbt-interval":
        from stevie_trainer.pbt.member import train_interval

        result = train_interval(
            spec,
            args.member,
            args.interval,
            _params(args.hyperparameters_json),
            args.init or None,
            args.out,
            name=name,
        )
        event = {k: result[k] for k in ("member", "interval", "fitness", "timesteps")}
        print(json.dumps({"event": "interval", **event}), flush=True)
        return 0
    from stevie_trainer.pbt.finish import finish_population
    from stevie_trainer.pbt.state import Population

    state = json.loads(storage.read_text(args.state))
    population = Population.from_dict(state)
    finish_population(
        spec, population, args.out, child_seconds=dict(state.get("child_seconds") or {})
    )
    return 0
