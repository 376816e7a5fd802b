"""``stevie run``'s loop: what it refuses before running anything, and that it stops, with
the operator's own status, when nothing runs and nothing can change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stevie_api.loader import load_resources
from stevie_api.pbt import PBTPopulationSpec
from stevie_operator.framework.artifacts import local_uid
from stevie_operator.kinds.pbtpopulation.control import save_state
from stevie_operator.local.runner import run_file, run_resources
from stevie_operator.registry import KINDS
from stevie_trainer.pbt.evolution import new_population
from support.specs import pbt_population


def test_a_kind_it_cannot_run_runs_nothing(tmp_path: Path) -> None:
    file = tmp_path / "both.yaml"
    spec = {"members": [{"uri": "file:///m.zip"}]}
    ensemble = {"apiVersion": "stevie.dev/v1alpha1", "kind": "Ensemble",
                "metadata": {"name": "ens"}, "spec": spec}  # fmt: skip
    file.write_text(yaml.safe_dump_all([pbt_population("first"), ensemble]))
    some = {k: v for k, v in KINDS.items() if k != "Ensemble"}  # a registry without it
    with pytest.raises(ValueError, match="Ensemble/ens: `stevie run` runs TrainingRun, HPOStudy"):
        run_file(file, tmp_path / "runs", some)
    assert not (tmp_path / "runs").exists()


def test_a_changed_population_is_degraded_as_on_a_cluster_and_the_run_stops(
    tmp_path: Path,
) -> None:
    """A started population (spec and state saved) whose stored spec another version wrote
    and this one cannot read: the edit cannot be applied, nor the old spec run."""
    # ``stevie run``'s objects have deterministic uids: the folder a rerun resumes in.
    uid = local_uid("PBTPopulation", "default", "pop")
    folder = tmp_path / "runs" / "default" / "pbtpopulations" / "pop" / uid
    folder.mkdir(parents=True)
    old = pbt_population("pop", perturbationInterval=512)
    old["spec"]["retiredKnob"] = 1  # a field this version no longer has
    (folder / "population-spec.json").write_text(json.dumps(old))
    spec = PBTPopulationSpec.model_validate(pbt_population("pop")["spec"])
    save_state(folder.as_uri(), new_population("pop", spec, np.random.default_rng(0)), {})
    file = tmp_path / "pop.yaml"
    file.write_text(yaml.safe_dump(pbt_population("pop")))
    said: list[str] = []
    (done,) = run_resources(load_resources(file), tmp_path / "runs", KINDS, say=said.append)
    status = done["status"]
    degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ImmutableFieldChanged")
    assert "population-spec.json) no longer validates" in status["message"]
    assert any("ImmutableFieldChanged" in line for line in said)
    assert said[-1].endswith("nothing runs and nothing changes; stopping here")
    assert not (folder / "members").exists()


def test_resources_run_after_those_they_reference(tmp_path: Path) -> None:
    """An Ensemble listed before its members runs after them."""
    from stevie_operator.local.cluster import LocalCluster
    from stevie_operator.local.launcher import LocalLauncher
    from stevie_operator.local.runner import _load

    members = [{"trainingRun": "b"}, {"pbtPopulation": "first"}]
    ensemble = {"apiVersion": "stevie.dev/v1alpha1", "kind": "Ensemble",
                "metadata": {"name": "ens"}, "spec": {"members": members}}  # fmt: skip
    run = {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "b"},
           "spec": {"data": {"uri": "x.csv"}}}  # fmt: skip
    file = tmp_path / "all.yaml"
    file.write_text(yaml.safe_dump_all([ensemble, run, pbt_population("first")]))
    todo = _load(load_resources(file), KINDS, LocalCluster(LocalLauncher(), lambda job: None))
    assert [(k.name, b["metadata"]["name"]) for k, b, _ in todo] == [
        ("TrainingRun", "b"),
        ("PBTPopulation", "first"),
        ("Ensemble", "ens"),
    ]
