"""YAML loading: one clear line per problem, naming file, line, kind/name and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stevie_api import (
    Ensemble,
    HPOStudy,
    PBTPopulation,
    SpecError,
    TrainingRun,
    load_resources,
    parse_resource,
)

GOOD = """\
apiVersion: stevie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: foo
spec:
  data:
    uri: data.csv
    split:
      validationStart: 2017-01-01
      testStart: 2018-01-01T00:00:00Z
  ppo:
    learningRate: 1e-4
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as excinfo:
        load_resources(path)
    lines = str(excinfo.value).splitlines()
    assert lines == excinfo.value.problems
    for line in lines:
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith(str(path))
    return lines


def test_loads_yaml_like_kubernetes(tmp_path: Path) -> None:
    (run,) = load_resources(write(tmp_path, GOOD))
    assert isinstance(run, TrainingRun)
    # Dates stay strings (not YAML timestamps) and 1e-4 is a float (YAML 1.2).
    assert run.spec.data.split.validation_start == "2017-01-01"
    assert run.spec.data.split.test_start == "2018-01-01T00:00:00Z"
    assert run.spec.ppo.learning_rate == 1e-4


def test_multi_document_file_with_every_kind(tmp_path: Path) -> None:
    head = "apiVersion: stevie.dev/v1alpha1\nkind: {}\nmetadata: {{name: {}}}\n"
    template = "spec: {template: {data: {uri: data.csv}}}"
    text = "\n---\n".join(
        [
            GOOD,
            head.format("HPOStudy", "h") + template,
            head.format("PBTPopulation", "p") + template,
            "apiVersion: stevie.dev/v1alpha1\nkind: Ensemble\nmetadata: {name: e}\n"
            "spec: {members: [{trainingRun: foo}]}",
            "",  # an empty document is skipped
        ]
    )
    resources = load_resources(write(tmp_path, text))
    assert [type(r) for r in resources] == [TrainingRun, HPOStudy, PBTPopulation, Ensemble]


def test_field_errors_name_file_line_kind_and_field(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  ppo:\n", "  env:\n    windw: 3\n    window: 0\n  total_timesteps: 5\n  ppo:\n"
    )
    path = write(tmp_path, text)
    lines = problems(path)
    assert (
        f"{path}:12: TrainingRun/foo: spec.env.windw: unknown field (did you mean window?)" in lines
    )
    assert f"{path}:13: TrainingRun/foo: spec.env.window: must be >= 2 (got 0)" in lines
    assert (
        f"{path}:14: TrainingRun/foo: spec.total_timesteps: unknown field "
        "(did you mean totalTimesteps? fields are camelCase)"
    ) in lines
    assert len(lines) == 3
    assert lines == sorted(lines, key=lambda x: int(x.split(":")[1]))  # file order


def test_cross_field_errors_and_unions(tmp_path: Path) -> None:
    text = """\
apiVersion: stevie.dev/v1alpha1
kind: HPOStudy
metadata: {name: study}
spec:
  template:
    data: {uri: x.csv}
    algorithm: DQN
    behaviourCloning: {enabled: true}
  searchSpace:
    batch_size: {type: categorical, choices: [32, [64]]}
"""
    lines = problems(write(tmp_path, text))
    assert any(
        ":5: HPOStudy/study: spec.template: behaviourCloning.enabled is true but algorithm is DQN"
        in line
        for line in lines
    ), lines
    assert any(
        "spec.searchSpace.batch_size.choices[1]: must be a valid boolean, a valid integer, "
        "a valid number or a valid string (got a list)" in line
        for line in lines
    ), lines


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: stevie.dev/v1alpha1\nkind: [TrainingRun\nspec: {}\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:3: YAML syntax error:")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  seed: 1\n  seed: 2\n")
    (line,) = problems(path)
    assert line == f"{path}:14: spec.seed: duplicate key"


def test_unknown_kind_and_api_version(tmp_path: Path) -> None:
    text = (
        "apiVersion: stevie.dev/v1\nkind: TrainingRun\nmetadata: {name: a}\nspec: {}\n---\n"
        "apiVersion: stevie.dev/v1alpha1\nkind: Trainingrun\nmetadata: {name: b}\n---\n"
        "- just a list\n"
    )
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}:1: TrainingRun/a: apiVersion: must be stevie.dev/v1alpha1 (got 'stevie.dev/v1')",
        f"{path}:7: kind: must be one of TrainingRun, HPOStudy, PBTPopulation, Ensemble "
        "(got 'Trainingrun')",
        f"{path}:10: expected a mapping with apiVersion, kind, metadata and spec (got a list)",
    ]


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems(missing) == [f"{missing}: cannot read: No such file or directory"]
    empty = write(tmp_path, "# nothing\n")
    assert problems(empty) == [f"{empty}: no resources in the file"]


def test_duplicate_resources(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "---\n" + GOOD)
    (line,) = problems(path)
    assert line == f"{path}:14: TrainingRun/foo: defined twice"


def test_parse_resource_from_a_dict() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "PBTPopulation",
        "metadata": {"name": "p", "namespace": "ns", "uid": "123", "generation": 2},
        "spec": {"template": {"data": {"uri": "x"}}, "populationSize": 1},
    }
    with pytest.raises(SpecError) as excinfo:
        parse_resource(doc, "ns/p")
    assert str(excinfo.value) == (
        "ns/p: PBTPopulation/p: spec.populationSize: must be >= 2 (got 1)"
    )
    doc["spec"]["populationSize"] = 3
    resource = parse_resource(doc, "ns/p")
    assert isinstance(resource, PBTPopulation) and resource.metadata.generation == 2
