"""The Jobs of a PBTPopulation: one trainer Job per member interval, then one finish Job.
Pure: the planned :class:`~stevie_operator.pbt_reconcile.ChildJob` on the shared trainer pod
template (:func:`stevie_operator.jobs.trainer_job`: image, resources, storage, security
context from ``spec.template``).

* interval: ``python -m stevie_trainer pbt-interval --population-spec <pop>/population-spec.json
  --member M --interval I --hyperparameters-json {...} [--init <checkpoint>] --out
  <pop>/members/mM/iI``, Job ``<pop>-mM-iI`` (``-rN`` for the N-th retry);
* finish: ``python -m stevie_trainer pbt-finish ... --out <pop>``, Job ``<pop>-finish``.
"""

from __future__ import annotations

from typing import Any

from stevie_api.pbt import PBTPopulation
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import Owner, trainer_job
from stevie_operator.pbt_reconcile import ChildJob

__all__ = ["KIND", "child_job"]

KIND = "PBTPopulation"


def child_job(
    pop: PBTPopulation, namespace: str, child: ChildJob, config: OperatorConfig
) -> dict[str, Any]:
    """The batch/v1 Job of one planned child."""
    owner = Owner(KIND, pop.metadata.name, pop.metadata.uid, pop.metadata.labels)
    labels = {"stevie.dev/role": "interval" if child.member is not None else "finish"}
    if child.member is not None:
        labels |= {
            "stevie.dev/member": str(child.member),
            "stevie.dev/interval": str(child.interval),
        }
    command, *args = child.args
    return trainer_job(
        name=child.name,
        namespace=namespace,
        owner=owner,
        run_spec=pop.spec.template,
        config=config,
        command=command,
        args=args,
        env=[],
        out=child.out,
        labels=labels,
    )
