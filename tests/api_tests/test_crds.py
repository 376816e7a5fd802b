"""Generated CRDs: structural, described, valid CustomResourceDefinitions, and no drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stevie_api import GROUP, KINDS, VERSION, generate_crds, write_crds
from stevie_api.crd import (
    CRD_HEADER,
    missing_descriptions,
    render_crd,
    structural_schema,
    structural_violations,
)
from support.paths import CRDS as CRDS_DIR

CRDS = generate_crds()


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, child in node.get("properties", {}).items():
        out += walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += walk(node[key], f"{path}[{key}]")
    return out


def test_one_crd_per_kind_with_names() -> None:
    assert sorted(CRDS) == [
        "stevie.dev_ensembles.yaml",
        "stevie.dev_hpostudies.yaml",
        "stevie.dev_pbtpopulations.yaml",
        "stevie.dev_trainingruns.yaml",
    ]
    short = {
        crd["spec"]["names"]["kind"]: crd["spec"]["names"]["shortNames"] for crd in CRDS.values()
    }
    assert short == {
        "Ensemble": ["ens"],
        "HPOStudy": ["hpo"],
        "PBTPopulation": ["pbt"],
        "TrainingRun": ["strun"],
    }
    for crd in CRDS.values():
        spec = crd["spec"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{GROUP}"
        assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["stevie"]
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
        assert version["subresources"] == {"status": {}}
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert columns["Phase"]["jsonPath"] == ".status.phase"
        assert columns["Age"] == {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
            "description": "Time since creation.",
        }


def test_printer_columns_point_at_real_fields() -> None:
    for info in KINDS.values():
        crd = CRDS[f"{GROUP}_{info.plural}.yaml"]
        schema = schema_of(crd)
        nodes = dict(walk(schema))
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
            path = column["jsonPath"]
            if path.startswith(".metadata"):
                continue
            assert path in nodes, f"{info.kind}: printer column {path} is not in the schema"
            expected = {"integer": "integer", "number": "number", "string": "string"}
            assert nodes[path]["type"] == expected[column["type"]], path
    best = {
        "TrainingRun": ".status.validation.sharpe",
        "HPOStudy": ".status.bestValue",
        "PBTPopulation": ".status.bestFitness",
        "Ensemble": ".status.backtest.sharpe",
    }
    for info in KINDS.values():
        paths = [c.json_path for c in info.printer_columns]
        assert best[info.kind] in paths


@pytest.mark.parametrize("filename", sorted(CRDS))
def test_schema_is_structural(filename: str) -> None:
    schema = schema_of(CRDS[filename])
    assert structural_violations(schema) == []
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "$defs" not in text
    for path, node in walk(schema):
        if "anyOf" in node:  # only Kubernetes' int-or-string form (cpu, memory)
            assert node["x-kubernetes-int-or-string"] is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        assert "title" not in node, path
        assert "const" not in node, path
        if node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ):
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert node[key] is True and ("minimum" if "Min" in key else "maximum") in node
        if "default" in node:
            assert not isinstance(node["default"], dict | list), path
    top = schema["properties"]
    assert set(top) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert top["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


@pytest.mark.parametrize("filename", sorted(CRDS))
def test_every_property_is_described(filename: str) -> None:
    schema = schema_of(CRDS[filename])
    assert schema["description"]
    assert missing_descriptions(schema) == []
    described = [p for p, n in walk(schema) if p.count(".") >= 2 and "description" in n]
    assert len(described) > 20


def test_schema_conversions() -> None:
    tr = schema_of(CRDS["stevie.dev_trainingruns.yaml"])["properties"]["spec"]["properties"]
    # Optional -> nullable; Literal -> enum with type; exclusive bounds -> OpenAPI 3.0 form.
    assert tr["image"] == {
        "description": tr["image"]["description"],
        "type": "string",
        "nullable": True,
    }
    assert tr["algorithm"]["enum"] == ["PPO", "DQN"] and tr["algorithm"]["type"] == "string"
    assert tr["algorithm"]["default"] == "PPO"
    frac = tr["data"]["properties"]["split"]["properties"]["trainFraction"]
    assert (frac["minimum"], frac["exclusiveMinimum"]) == (0, True)
    assert (frac["maximum"], frac["exclusiveMaximum"]) == (1, True)
    assert frac["default"] == 0.7
    assert tr["nodeSelector"]["additionalProperties"] == {"type": "string"}
    cpu = tr["resources"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True and "type" not in cpu
    hpo = schema_of(CRDS["stevie.dev_hpostudies.yaml"])["properties"]
    space = hpo["spec"]["properties"]["searchSpace"]
    assert space["type"] == "object"
    choices = space["additionalProperties"]["properties"]["choices"]
    assert choices["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "type" not in choices["items"]
    best = hpo["status"]["properties"]["bestParams"]
    assert best["additionalProperties"] == {"x-kubernetes-preserve-unknown-fields": True}
    conditions = hpo["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["required"] == [
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    ]
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_structural_violations_are_found() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "c": {"type": "number", "exclusiveMinimum": 0},
            "d": {"type": "array"},
            "e": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "metadata": {"type": "object", "description": "x"},
        },
    }
    problems = "\n".join(structural_violations(bad))
    for needle in ("a: key '$ref'", "a: no type", "b: anyOf branch sets 'type'", "c: exclusive"):
        assert needle in problems
    assert "d: array without an items schema" in problems
    assert "e: properties and additionalProperties together" in problems
    assert "metadata: the root metadata" in problems


@pytest.mark.parametrize("filename", sorted(CRDS))
def test_crd_is_a_valid_kubernetes_object(filename: str) -> None:
    kubernetes_validate.validate(CRDS[filename], "1.30", strict=True)


def test_kubernetes_validate_does_catch_mistakes() -> None:
    broken = yaml.safe_load(yaml.safe_dump(CRDS["stevie.dev_trainingruns.yaml"]))
    broken["spec"]["scop"] = "Namespaced"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_committed_crds_match_the_models() -> None:
    hint = "crds/ is out of date with stevie_api: run `make crds` (stevie crds --out crds)"
    on_disk = {p.name: p for p in sorted(CRDS_DIR.glob("*.yaml"))}
    assert sorted(on_disk) == sorted(CRDS), hint
    for name, crd in CRDS.items():
        text = on_disk[name].read_text(encoding="utf-8")
        assert yaml.safe_load(text) == crd, f"{name}: {hint}"
        assert text.startswith(CRD_HEADER), f"{name}: {hint}"


def test_write_crds_is_deterministic(tmp_path: Path) -> None:
    first = write_crds(tmp_path / "a")
    second = write_crds(tmp_path / "b")
    assert [p.name for p in first] == sorted(CRDS)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_text(encoding="utf-8") == render_crd(CRDS[a.name])
    assert structural_schema(KINDS["TrainingRun"]) == schema_of(
        CRDS["stevie.dev_trainingruns.yaml"]
    )
