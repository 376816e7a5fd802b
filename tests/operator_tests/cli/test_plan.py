"""``stevie plan FILE.yaml``: the objects the operator would create first, as it builds them,
for every example; valid for Kubernetes (strict), deterministic, and torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stevie_api.training import TrainingRun
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.trainingrun.children import training_job
from stevie_operator.preview import PLACEHOLDER_UID
from support.cli import ok, one_error_line, stevie
from support.paths import EXAMPLES, REPO

FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
# What each example's first reconcile creates (the Ensemble's members shown as finished).
EXPECTED = {
    "trainingrun-quickstart.yaml": ["Job"],
    "trainingrun-btc-bc.yaml": ["Job"],
    "hpo-study.yaml": ["Job", "Job"],
    "pbt-population.yaml": ["Job", "Job"],
    "ensemble.yaml": ["Job", "Deployment", "Service"],
    "ensemble-local.yaml": ["Job", "Job", "Job", "Job", "Deployment", "Service"],
}


@pytest.fixture(autouse=True)
def _no_operator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STEVIE_TRAINER_IMAGE", "STEVIE_JOB_TTL_SECONDS", "STEVIE_STORAGE_URI"):
        monkeypatch.delenv(name, raising=False)


def planned(capsys: pytest.CaptureFixture[str], *args: str | Path) -> list[dict[str, Any]]:
    result = stevie(capsys, "plan", *args)
    ok(result)
    docs = [d for d in yaml.safe_load_all(result.out) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def test_every_example_is_covered() -> None:
    assert set(FILES) == set(EXPECTED)


@pytest.mark.parametrize("name", FILES)
def test_every_planned_object_is_valid_and_owned(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    docs = planned(capsys, EXAMPLES / name)
    assert [d["kind"] for d in docs] == EXPECTED[name]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
        owner = doc["metadata"]["ownerReferences"][0]
        assert owner["uid"] == PLACEHOLDER_UID and owner["controller"] is True
        assert doc["metadata"]["namespace"] == "default"
        if doc["kind"] == "Job":
            assert doc["spec"]["ttlSecondsAfterFinished"] == 86400
            assert doc["spec"]["podFailurePolicy"]["rules"][1]["action"] == "FailJob"
    again = stevie(capsys, "plan", EXAMPLES / name)
    assert again.out == stevie(capsys, "plan", EXAMPLES / name).out  # deterministic


def test_the_job_is_exactly_what_the_operator_builds(capsys: pytest.CaptureFixture[str]) -> None:
    (job,) = planned(capsys, EXAMPLES / "trainingrun-quickstart.yaml", "-n", "team-a")
    doc = yaml.safe_load((EXAMPLES / "trainingrun-quickstart.yaml").read_text())
    doc["metadata"] |= {"namespace": "team-a", "uid": PLACEHOLDER_UID}
    expected = training_job(TrainingRun.model_validate(doc), "team-a", OperatorConfig.from_env())
    assert job == expected
    assert job["metadata"]["annotations"]["stevie.dev/run-uri"].endswith(
        f"/team-a/trainingruns/trainingrun-quickstart/{PLACEHOLDER_UID}"
    )


def test_operator_settings_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEVIE_TRAINER_IMAGE", "registry.local/trainer:dev")
    monkeypatch.setenv("STEVIE_JOB_TTL_SECONDS", "0")
    (job,) = planned(capsys, EXAMPLES / "trainingrun-quickstart.yaml")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/trainer:dev"
    assert "ttlSecondsAfterFinished" not in job["spec"]
    monkeypatch.setenv("STEVIE_JOB_TTL_SECONDS", "5")
    result = stevie(capsys, "plan", EXAMPLES / "trainingrun-quickstart.yaml")
    one_error_line(result, "STEVIE_JOB_TTL_SECONDS='5'", "at least 60")


def test_json_is_a_list_of_the_same_objects(capsys: pytest.CaptureFixture[str]) -> None:
    as_yaml = planned(capsys, EXAMPLES / "ensemble-local.yaml")
    result = stevie(capsys, "plan", EXAMPLES / "ensemble-local.yaml", "-o", "json")
    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert listed["kind"] == "List" and listed["items"] == as_yaml
    assert "shown as finished" in result.err  # the notes go to stderr, JSON stays clean


def test_the_yaml_says_what_it_assumes(capsys: pytest.CaptureFixture[str]) -> None:
    result = stevie(capsys, "plan", EXAMPLES / "hpo-study.yaml")
    comments = " ".join(line for line in result.out.splitlines() if line.startswith("#"))
    assert "placeholder" in comments and "HPOStudy/hpo-study in namespace default" in comments
    assert "Optuna samples their" in comments


def test_bad_input_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: stevie.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: x}\n")
    one_error_line(stevie(capsys, "plan", bad), "bad.yaml")
    other = tmp_path / "other.yaml"
    doc = yaml.safe_load((EXAMPLES / "trainingrun-quickstart.yaml").read_text())
    doc["metadata"]["namespace"] = "a"
    other.write_text(yaml.safe_dump(doc))
    one_error_line(stevie(capsys, "plan", other, "-n", "b"), "'a'", "--namespace 'b'")


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "stable_baselines3", "gymnasium", "numba"}:
            raise ImportError(f"{name} is not in the operator image")
sys.meta_path.insert(0, Block())
from stevie_operator.cli import main
sys.exit(main(["plan", sys.argv[1]]))
"""


@pytest.mark.parametrize("name", ["pbt-population.yaml", "ensemble.yaml"])
def test_it_runs_in_the_operator_image_without_torch(name: str) -> None:
    paths = [str(REPO / d) for d in ("api", "trainer", "operator")]
    done = subprocess.run(
        [sys.executable, "-c", BLOCK, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len([d for d in yaml.safe_load_all(done.stdout) if d]) == len(EXPECTED[name])


def _data_uris(doc: Any) -> list[str]:
    """Every ``data.uri`` in a resource (a TrainingRun's, a template's)."""
    if isinstance(doc, dict):
        data = doc.get("data")
        found = [data["uri"]] if isinstance(data, dict) and "uri" in data else []
        return found + [u for v in doc.values() for u in _data_uris(v)]
    if isinstance(doc, list):
        return [u for v in doc for u in _data_uris(v)]
    return []


@pytest.mark.parametrize("name", FILES)
def test_every_examples_pods_can_read_its_data(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A file:// data URI must lie on a volume the pod mounts (an example once read
    file:///data/... while its artifacts, and so its only volume, were in S3)."""
    files = [u.removeprefix("file://") for u in _data_uris(list(yaml.safe_load_all(
        (EXAMPLES / name).read_text()))) if u.startswith("file://")]  # fmt: skip
    for doc in planned(capsys, EXAMPLES / name):
        if doc["kind"] == "Service":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            mounts = [m["mountPath"].rstrip("/") + "/" for m in container["volumeMounts"]]
            unreadable = [f for f in files if not any(f.startswith(m) for m in mounts)]
            assert not unreadable, f"{doc['metadata']['name']}: no volume for {unreadable}"
