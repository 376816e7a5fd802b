"""The pods the operator itself creates meet the restricted Pod Security Standard: every
Job and Deployment the pure builders make (kinds/*/children.py on framework/pods.py), for
each kind, with PVC and S3 storage. A namespace enforcing "restricted" admits the chart's
operator (test_render.py) and these; a refused trainer pod would only show on a cluster,
after its Job was created."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from chart_tests.pss import pod_specs, violations

from stevie_api.ensemble import Ensemble
from stevie_api.hpo import HPOStudy
from stevie_api.pbt import PBTPopulation
from stevie_api.training import TrainingRun
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.ensemble.children import backtest_job, deployment
from stevie_operator.kinds.hpostudy.children import finish_job as hpo_finish
from stevie_operator.kinds.hpostudy.children import trial_job
from stevie_operator.kinds.pbtpopulation.children import finish_job as pbt_finish
from stevie_operator.kinds.pbtpopulation.children import interval_job
from stevie_operator.kinds.trainingrun.children import training_job
from stevie_trainer.pbt.state import Action
from support.paths import example
from support.specs import hpo_study, pbt_population

NS = "team-a"
CONFIGS = {
    "pvc": OperatorConfig(storage_uri="file:///data/stevie"),
    "s3": OperatorConfig(storage_uri="s3://bucket/runs", s3_endpoint_url="http://minio:9000"),
}


def named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name, "namespace": NS, "uid": f"uid-{name}"}
    return doc


def built(config: OperatorConfig) -> Iterator[dict[str, Any]]:
    """One of every workload the operator creates."""
    run = TrainingRun.model_validate(named(example("trainingrun-quickstart.yaml"), "tr"))
    yield training_job(run, NS, config)
    study = HPOStudy.model_validate(named(hpo_study(), "hpo"))
    yield trial_job(study, NS, 0, config)
    yield hpo_finish(study, NS, 4, config)
    pop = PBTPopulation.model_validate(named(pbt_population(), "pbt"))
    yield interval_job(pop, NS, Action("launch", member=0, interval=0, name="pbt-m0-i0"), config)
    yield pbt_finish(pop, NS, config)
    ens = Ensemble.model_validate(named(example("ensemble.yaml"), "ens"))
    yield backtest_job(ens, NS, config, "v1")
    yield deployment(ens, NS, config, "v1")


@pytest.mark.parametrize("storage", sorted(CONFIGS))
def test_the_operators_pods_are_restricted(storage: str) -> None:
    objects = list(built(CONFIGS[storage]))
    assert sorted({o["kind"] for o in objects}) == ["Deployment", "Job"]
    specs = [where_spec for obj in objects for where_spec in pod_specs(obj)]
    assert len(specs) == len(objects) == 7
    found = {where: violations(spec) for where, spec in specs}
    assert found == {where: [] for where, _ in specs}
