"""Every example validates against its pydantic model AND its CRD's openAPIV3Schema; broken
variants are rejected by both, with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stevie_api import KINDS, SpecError, generate_crds, load_resources, parse_resource
from stevie_api.crd import crd_filename
from support.paths import EXAMPLES as EXAMPLES_DIR

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
CRDS = generate_crds()


def to_draft4(node: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema as a JSON Schema draft 4 schema, with kubectl's strict
    field validation (unknown fields are errors)."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in node:
        out["properties"] = {k: to_draft4(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out[key] = to_draft4(node[key])
    return out


def validator_for(kind: str) -> jsonschema.Draft4Validator:
    crd = CRDS[crd_filename(KINDS[kind])]
    schema = to_draft4(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    errors = validator_for(doc["kind"]).iter_errors(doc)
    return [".".join(str(p) for p in e.absolute_path) + ": " + e.message for e in errors]


def model_errors(doc: dict[str, Any]) -> list[str]:
    try:
        parse_resource(doc, "example.yaml")
    except SpecError as err:
        return err.problems
    return []


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "trainingrun-quickstart.yaml",
        "trainingrun-btc-bc.yaml",
        "hpo-study.yaml",
        "pbt-population.yaml",
        "ensemble.yaml",
    } <= names
    kinds = {doc["kind"] for path in EXAMPLES for doc in documents(path)}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_model_and_crd(path: Path) -> None:
    resources = load_resources(path)
    assert resources
    for doc, resource in zip(documents(path), resources, strict=True):
        assert schema_errors(doc) == []
        # What the model writes back is valid for the CRD too, and reads back the same.
        dumped = resource.model_dump(by_alias=True, exclude_none=True, mode="json")
        assert schema_errors(dumped) == []
        assert type(resource).model_validate(dumped) == resource


def test_quickstart_is_small_and_bundled() -> None:
    (run,) = load_resources(EXAMPLES_DIR / "trainingrun-quickstart.yaml")
    assert run.kind == "TrainingRun" and run.metadata.name == "trainingrun-quickstart"
    spec = run.spec
    assert spec.data.uri == "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
    assert spec.algorithm == "PPO" and spec.total_timesteps <= 25_000
    assert (spec.n_envs, spec.ppo.n_steps, spec.ppo.batch_size) == (8, 256, 64)
    assert spec.evaluation.eval_freq == 4096
    (pbt,) = load_resources(EXAMPLES_DIR / "pbt-population.yaml")
    assert pbt.kind == "PBTPopulation" and pbt.spec.population_size == 4
    assert pbt.spec.template.data.uri == spec.data.uri


def test_status_written_by_the_operator_fits_the_crd() -> None:
    (doc,) = documents(EXAMPLES_DIR / "trainingrun-quickstart.yaml")
    doc["status"] = {
        "observedGeneration": 1,
        "phase": "Succeeded",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "JobSucceeded",
                "message": "",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
        "progress": {"timesteps": 20480, "totalTimesteps": 20480, "percent": 100},
        "validation": {"sharpe": 1.2, "trades": 7},
        "test": {"sharpe": 0.4, "maxDrawdown": 0.1},
        "artifacts": {"uri": "file:///tmp/x", "model": "file:///tmp/x/model.zip"},
        "startTime": "2024-01-01T00:00:00Z",
    }
    assert schema_errors(doc) == [] and model_errors(doc) == []


# (example, path of the change, new value or DELETE, text both messages must name)
DELETE = object()
BROKEN: list[tuple[str, tuple[str | int, ...], Any, str]] = [
    ("trainingrun-quickstart.yaml", ("spec", "env", "window"), "twenty", "spec.env.window"),
    ("trainingrun-quickstart.yaml", ("spec", "env", "window"), 0, "spec.env.window"),
    ("trainingrun-quickstart.yaml", ("spec", "env", "windw"), 20, "windw"),
    ("trainingrun-quickstart.yaml", ("spec", "ppo", "clipRange"), 0, "spec.ppo.clipRange"),
    ("trainingrun-quickstart.yaml", ("spec", "algorithm"), "A2C", "spec.algorithm"),
    ("trainingrun-quickstart.yaml", ("spec", "nEnvs"), 1.5, "spec.nEnvs"),
    ("trainingrun-quickstart.yaml", ("spec", "data", "uri"), "", "uri"),
    (
        "trainingrun-quickstart.yaml",
        ("spec", "data", "split", "trainFraction"),
        1.0,
        "spec.data.split.trainFraction",
    ),
    ("trainingrun-btc-bc.yaml", ("spec", "resources", "gpu"), -1, "spec.resources.gpu"),
    ("trainingrun-btc-bc.yaml", ("spec", "env", "features", 0), "macd", "spec.env.features[0]"),
    ("trainingrun-btc-bc.yaml", ("spec", "augmentation", "noize"), {}, "noize"),
    ("hpo-study.yaml", ("spec", "maxTrials"), 0, "spec.maxTrials"),
    ("hpo-study.yaml", ("spec", "sampler"), "grid", "spec.sampler"),
    ("hpo-study.yaml", ("spec", "template", "totalTimesteps"), "many", "totalTimesteps"),
    ("pbt-population.yaml", ("spec", "quantileFraction"), 0.9, "spec.quantileFraction"),
    ("pbt-population.yaml", ("spec", "perturbationFactors", 0), "x", "perturbationFactors[0]"),
    ("pbt-population.yaml", ("spec", "mode"), "lockstep", "spec.mode"),
    ("ensemble.yaml", ("spec", "serving", "port"), 70000, "spec.serving.port"),
    ("ensemble.yaml", ("spec", "method"), "vote", "spec.method"),
    ("ensemble.yaml", ("spec", "members"), [], "spec.members"),
]


def set_path(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def dotted(message: str) -> str:
    """jsonschema paths use dots for indices: features.0 -> features[0]."""
    parts = message.split(": ", 1)[0].split(".")
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out + ": " + message.split(": ", 1)[-1]


@pytest.mark.parametrize(
    ("example", "path", "value", "needle"),
    BROKEN,
    ids=[f"{e}:{'.'.join(map(str, p))}" for e, p, _, _ in BROKEN],
)
def test_broken_examples_are_rejected_by_model_and_crd(
    example: str, path: tuple[str | int, ...], value: Any, needle: str
) -> None:
    (doc,) = documents(EXAMPLES_DIR / example)
    doc = copy.deepcopy(doc)
    set_path(doc, path, value)
    from_model = model_errors(doc)
    from_schema = [dotted(m) for m in schema_errors(doc)]
    assert from_model, "the model accepted it"
    assert from_schema, "the CRD schema accepted it"
    assert any(needle in m for m in from_model), from_model
    assert any(needle in m for m in from_schema), from_schema
