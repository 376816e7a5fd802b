"""Where a PBTPopulation lives and its Jobs: one trainer Job per member interval, then one
finish Job. Pure functions, on the shared trainer pod template
(:func:`stevie_operator.framework.pods.trainer_job`: image, resources, storage, security
context from ``spec.template``).

* interval: ``python -m stevie_trainer pbt-interval --population-spec <pop>/population-spec.json
  --member M --interval I --hyperparameters-json {...} [--init <checkpoint>] --out
  <pop>/members/mM/iI``, Job ``<pop>-mM-iI`` (``-rN`` for the N-th retry);
* finish: ``python -m stevie_trainer pbt-finish ... --out <pop>``, Job ``<pop>-finish``.

The population folder holds ``population-spec.json`` (what the pods read),
``population.json`` (the state, saved before any Job is created) and, at the end,
``pbt_summary.json``.
"""

from __future__ import annotations

import json
from typing import Any

from stevie_api.naming import child_name
from stevie_api.pbt import PBTPopulation
from stevie_operator.framework.artifacts import resource_root
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import ROLE_LABEL, Owner, TrainerCommand, trainer_job
from stevie_trainer.common import storage
from stevie_trainer.pbt.state import Action

__all__ = [
    "SPEC_NAME",
    "STATE_NAME",
    "SUMMARY_NAME",
    "finish_job",
    "finish_job_name",
    "interval_job",
    "interval_uri",
    "population_dir",
]

STATE_NAME = "population.json"
SPEC_NAME = "population-spec.json"
SUMMARY_NAME = "pbt_summary.json"


def population_dir(pop: PBTPopulation, namespace: str, config: OperatorConfig) -> str:
    """``<storage root>/<namespace>/pbtpopulations/<name>/<uid>`` (a population deleted and
    created again starts over: :func:`~stevie_operator.framework.artifacts.artifact_root`)."""
    root = pop.spec.template.storage.uri or config.storage_uri
    return resource_root(root, namespace, pop.kind, pop.metadata, config.local)


def interval_uri(pop_dir: str, member: int, interval: int) -> str:
    """The folder of a member's interval (the same for every attempt: a retry replaces it)."""
    return storage.join(pop_dir, "members", f"m{member}", f"i{interval}")


def finish_job_name(name: str) -> str:
    """The deterministic name of the population's finish Job."""
    return child_name(name, "-finish")


def _job(
    pop: PBTPopulation,
    namespace: str,
    name: str,
    run: TrainerCommand,
    config: OperatorConfig,
    labels: dict[str, str],
) -> dict[str, Any]:
    return trainer_job(
        name=name,
        namespace=namespace,
        owner=Owner.of(pop),
        run_spec=pop.spec.template,
        config=config,
        run=run,
        labels=labels,
    )


def interval_job(
    pop: PBTPopulation, namespace: str, action: Action, config: OperatorConfig
) -> dict[str, Any]:
    """The Job that trains ``action``'s interval (named by the action)."""
    assert action.name is not None and action.member is not None
    assert action.interval is not None
    pop_dir = population_dir(pop, namespace, config)
    args = ["--population-spec", storage.join(pop_dir, SPEC_NAME)]
    args += ["--member", str(action.member), "--interval", str(action.interval)]
    args += ["--hyperparameters-json", json.dumps(action.hyperparameters, sort_keys=True)]
    if action.init_checkpoint:
        args += ["--init", action.init_checkpoint]
    out = interval_uri(pop_dir, action.member, action.interval)
    labels = {
        ROLE_LABEL: "interval",
        "stevie.dev/member": str(action.member),
        "stevie.dev/interval": str(action.interval),
    }
    run = TrainerCommand("pbt-interval", [*args, "--out", out], out)
    return _job(pop, namespace, action.name, run, config, labels)


def finish_job(pop: PBTPopulation, namespace: str, config: OperatorConfig) -> dict[str, Any]:
    """The Job that writes pbt_summary.json, the plots and the best member's test backtest."""
    pop_dir = population_dir(pop, namespace, config)
    args = ["--population-spec", storage.join(pop_dir, SPEC_NAME)]
    args += ["--state", storage.join(pop_dir, STATE_NAME), "--out", pop_dir]
    run = TrainerCommand("pbt-finish", args, pop_dir)
    name = finish_job_name(pop.metadata.name)
    return _job(pop, namespace, name, run, config, {ROLE_LABEL: "finish"})
