"""cpu and memory: Kubernetes quantities, an integer or a string, never a float (the API
server refuses `cpu: 0.5` for an int-or-string field), in the models and the CRDs alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stevie_api.crd import generate_crds, structural_violations
from stevie_api.loader import SpecError, load_resources
from stevie_api.runtime import Resources


def _cpu_schema() -> dict[str, Any]:
    crd = generate_crds()["stevie.dev_trainingruns.yaml"]
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    node: dict[str, Any] = root["properties"]["spec"]["properties"]["resources"]
    return dict(node["properties"]["cpu"])


CPU_SCHEMA = _cpu_schema()


@pytest.mark.parametrize(("value", "shown"), [(1, "1"), (2, "2"), ("500m", "500m"),
                                              ("0.5", "0.5"), ("1e3", "1e3")])  # fmt: skip
def test_integers_and_quantity_strings_are_accepted_and_rendered_as_strings(
    value: Any, shown: str
) -> None:
    assert Resources(cpu=value).cpu == shown
    assert jsonschema.Draft4Validator(CPU_SCHEMA).is_valid(value)  # the API server agrees


def test_the_crd_says_int_or_string_as_kubernetes_does() -> None:
    assert CPU_SCHEMA["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert CPU_SCHEMA["x-kubernetes-int-or-string"] is True and "type" not in CPU_SCHEMA
    validator = jsonschema.Draft4Validator(CPU_SCHEMA)
    assert not validator.is_valid(0.5) and not validator.is_valid("lots")


def test_stevie_validate_refuses_a_float_cpu_with_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "apiVersion: stevie.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: r}\n"
        "spec:\n  data: {uri: 'file:///d.csv'}\n  resources:\n    cpu: 0.5\n    memory: 1.5\n"
    )
    with pytest.raises(SpecError) as err:
        load_resources(path)
    text = "\n".join(err.value.problems)
    assert "spec.resources.cpu" in text and 'write cpu: 500m or cpu: "0.5"' in text
    assert "spec.resources.memory" in text and 'write memory: "512Mi"' in text
    path.write_text(path.read_text().replace("0.5", "'0.5'").replace("1.5", "1536Mi"))
    (run,) = load_resources(path)
    assert run.spec.resources.cpu == "0.5"  # type: ignore[union-attr]


def test_an_integral_float_gets_its_integer_spelling() -> None:
    with pytest.raises(ValueError, match="write cpu: 2"):
        Resources(cpu=2.0)


def test_only_the_int_or_string_any_of_is_structural() -> None:
    branches = [{"type": "integer"}, {"type": "string"}]
    assert structural_violations({"anyOf": branches, "x-kubernetes-int-or-string": True}) == []
    problems = structural_violations({"anyOf": branches})
    assert "<root>: no type" in problems and "<root>: anyOf branch sets 'type'" in problems
