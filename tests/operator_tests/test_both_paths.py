"""One resource of each kind, run both ways: ``stevie run`` (the local runner) and the real
operator against kmock with a kubelet that runs its Jobs as processes. Both go through the
same drive() and plans, so they must end in the same status (conditions, reasons, messages,
kind fields) and write the same outputs. Trials and intervals run one at a time, so the
order children finish in is the same on both paths."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from stevie_api.kinds import KINDS as API_KINDS
from stevie_api.loader import load_resources
from stevie_operator.local.runner import run_resources
from stevie_operator.registry import KINDS
from support.kmock import Cluster, operator, wait_for
from support.kubelet import Kubelet
from support.specs import hpo_study, pbt_population, template

# Keys of wall-clock times and speeds: they differ between any two runs.
TIMES = re.compile(
    r"^(fps|timings|overhead|child_seconds|datetime_\w+)$|(_seconds|seconds|_at|Time)$"
)
# What the API server (and kopf) add to an object, not the resource's own.
SERVER = re.compile(r"^(uid|resourceVersion|creationTimestamp|annotations|managedFields)$")
# An HPO sampler is not seeded: two studies try other values. What must agree is the rest.
HPO_VALUES = re.compile(r"^(top|best\w*|params|values?|deflatedSharpe|pbo)$")
NUMBER = re.compile(r"-?\d+\.\d+(e-?\d+)?")
TRIAL = re.compile(r"[Tt]rial \d+")
# Artifacts are keyed by the object's uid (<name>/<uid>): the API server's differs from the
# one ``stevie run`` gives.
UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Files whose content holds timings, hosts or absolute paths: compared by name only.
BY_NAME = re.compile(r"(\.log|\.png|\.zip|\.pkl|tfevents.*|\.journal|state\.json)$")


def training_run() -> dict[str, Any]:
    spec = template(totalTimesteps=1024)
    return {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": "paths-tr"}, "spec": spec}  # fmt: skip


RESOURCES: dict[str, Callable[[], dict[str, Any]]] = {
    "TrainingRun": training_run,
    "HPOStudy": lambda: hpo_study(
        "paths-hpo", maxTrials=2, parallelism=1, significance={"enabled": False}
    ),
    "PBTPopulation": lambda: pbt_population(
        "paths-pbt",
        populationSize=2,
        parallelism=1,
        quantileFraction=0.5,
        stopping={"maxIntervals": 2},
    ),
}


def _normal(value: Any, roots: tuple[str, ...], sampled: bool = False) -> Any:
    """``value`` without times or server metadata, both storage roots written the same way;
    ``sampled``: without the values an unseeded sampler chose, and what they scored."""

    def keep(key: str) -> bool:
        return not (TIMES.search(key) or SERVER.search(key) or (sampled and HPO_VALUES.search(key)))

    if isinstance(value, dict):
        return {k: _normal(v, roots, sampled) for k, v in value.items() if keep(k)}
    if isinstance(value, list):
        return [_normal(v, roots, sampled) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        value = UID.sub("<uid>", value)
        value = TRIAL.sub("trial <n>", NUMBER.sub("<n>", value)) if sampled else value
    return value


def _outputs(root: Path) -> dict[str, Any]:
    """Every file the run wrote: JSON documents by content, others by name."""
    found: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = UID.sub("<uid>", str(path.relative_to(root)))
        if "/logs/" in f"/{rel}" or "tensorboard" in rel:
            continue
        if path.suffix == ".json" and not BY_NAME.search(rel):
            found[rel] = json.loads(path.read_text())
        else:
            found[rel] = None
    return found


def _local(doc: dict[str, Any], root: Path) -> dict[str, Any]:
    file = root.parent / f"{root.name}.yaml"
    file.write_text(yaml.safe_dump(doc))
    (done,) = run_resources(load_resources(file), root, KINDS, say=lambda _: None)
    return dict(done["status"])


def _cluster(cluster: Cluster, doc: dict[str, Any], root: Path) -> dict[str, Any]:
    plural = API_KINDS[doc["kind"]].plural
    path = f"/apis/stevie.dev/v1alpha1/namespaces/default/{plural}/{doc['metadata']['name']}"

    def finished() -> dict[str, Any] | None:
        status = (cluster.api("GET", path) or {}).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    with Kubelet(cluster, root.parent / "kubelet-logs"), operator():
        cluster.api("POST", path.rsplit("/", 1)[0], doc)
        status = wait_for(finished, timeout=240, what=f"{doc['kind']} to finish")
        cluster.settle()
    return status


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(RESOURCES))
def test_stevie_run_and_the_operator_end_alike(
    kind: str, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_root, cluster_root = tmp_path / "local", tmp_path / "data"  # conftest's cluster root
    local = _local(RESOURCES[kind](), local_root)
    remote = _cluster(cluster, RESOURCES[kind](), cluster_root)
    roots = (local_root.resolve().as_uri(), cluster_root.resolve().as_uri(),
             str(local_root.resolve()), str(cluster_root.resolve()))  # fmt: skip
    assert remote["phase"] == local["phase"] == "Succeeded", (remote, local)
    sampled = kind == "HPOStudy"
    assert _normal(remote, roots, sampled) == _normal(local, roots, sampled)
    remote_files, local_files = _outputs(cluster_root), _outputs(local_root)
    if sampled:  # the same files; their numbers come from other trials
        assert sorted(remote_files) == sorted(local_files)
    else:  # the same files with the same content: the same training, the same decisions
        assert _normal(remote_files, roots) == _normal(local_files, roots)
