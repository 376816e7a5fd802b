"""The chart's RBAC allows every API call the operator makes, derived from the code.

Dynamically: the real operator (kopf, every kind) runs against kmock with one resource of
each kind driven through their Jobs, while the emulator records every request; each request
becomes an RBAC check (HTTP method and URL -> verb, group, resource/subresource, namespace)
against the Roles and ClusterRoles `helm template` renders for the same install mode. Run
cluster-wide (ClusterRole), for one namespace (Role + the cluster-scoped ClusterRole), and
with leader election (the Lease's Role in the release namespace).
Statically: every KubeAPI call the controller code makes on a literal object path, and the
calls drive() makes on every kind and child type, are allowed too. Conversely, every
permission the chart grants is one of those, or the finalizers update that kmock cannot show.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import kopf
import pytest
from chart_tests.helm import NAMESPACE, ROOT, render
from kopf.testing import KopfRunner

from stevie_api import API_VERSION, GROUP
from stevie_api.kinds import KINDS
from stevie_operator.app import register
from stevie_operator.framework.children import CHILD_TYPES
from stevie_trainer.common import storage
from support.jobs import done, failed
from support.kmock import JOBS, Call, Cluster, wait_for
from support.paths import example
from support.specs import hpo_study, pbt_population

API = f"/apis/{API_VERSION}/namespaces/default"
NS = "default"
VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
TEST_AGENT = "Python-urllib"  # the test's own requests (support.kmock.Cluster.api)


class Permission(NamedTuple):
    verb: str
    group: str
    resource: str  # with "/subresource"
    namespace: str | None  # None: cluster-wide (a cluster-scoped object, or all namespaces)


def permission(call: Call) -> Permission | None:
    """The RBAC check of one request; None for a non-resource URL (discovery is allowed to
    every authenticated user by system:discovery)."""
    if call.resource is None or call.group is None:
        return None
    if call.method == "GET":
        verb = {"WATCH": "watch", "LIST": "list"}.get(call.action or "", "get")
    elif call.method == "DELETE" and call.name is None:
        verb = "deletecollection"
    else:
        verb = VERBS[call.method]
    resource = call.resource + (f"/{call.subresource}" if call.subresource else "")
    return Permission(verb, call.group, resource, call.namespace)


class Grants:
    """The rendered Roles (by namespace) and ClusterRoles bound to the operator."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.cluster: set[tuple[str, str, str]] = set()
        self.namespaced: dict[str, set[tuple[str, str, str]]] = {}
        for obj in objects:
            if obj["kind"] == "ClusterRole":
                self.cluster |= triples(obj["rules"])
            elif obj["kind"] == "Role":
                ns = obj["metadata"]["namespace"]
                self.namespaced.setdefault(ns, set()).update(triples(obj["rules"]))

    def allows(self, p: Permission) -> bool:
        key = (p.group, p.resource, p.verb)
        if key in self.cluster:
            return True
        return p.namespace is not None and key in self.namespaced.get(p.namespace, set())

    def granted(self) -> set[tuple[str, str, str]]:
        return self.cluster.union(*self.namespaced.values())


def triples(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip


def operator(args: list[str]) -> KopfRunner:
    """The operator with kopf ``args``. Serving named namespaces, kopf lists and watches
    Namespaces, which kmock cannot serve (it parses /api/v1/namespaces as a namespace):
    scanning is off then, and the chart's namespaces rule is checked against kopf's source
    (kopf/_core/reactor/observation.py: namespace_observer) instead."""
    registry = kopf.OperatorRegistry()
    register(registry, interval=1.0, on_lost_lease=LOST.append)
    settings = kopf.OperatorSettings()
    settings.networking.request_timeout = 10
    settings.scanning.disabled = "--all-namespaces" not in args
    settings.queueing.idle_timeout = 0.5
    return KopfRunner(["run", "--standalone", *args], registry=registry, settings=settings,
                      timeout=30)  # fmt: skip


def status(cluster: Cluster, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = (cluster.api("GET", f"{API}/{plural}/{name}") or {}).get("status") or {}
    return found


def _training_run(cluster: Cluster, data: Path) -> None:
    run: dict[str, Any] = copy.deepcopy(example("trainingrun-quickstart.yaml"))
    run["metadata"] = {"name": "a", "namespace": NS}
    cluster.api("POST", f"{API}/trainingruns", run)
    wait_for(lambda: cluster.api("GET", f"{JOBS}/a-train"), what="a's Job")
    result = {"status": "succeeded", "timesteps": 20480, "validation": {"sharpe": 1.0},
              "test": {"agent": {"sharpe": 0.5}}}  # fmt: skip
    folder = (data / NS / "trainingruns" / "a").as_uri()
    storage.write_text(storage.join(folder, "result.json"), json.dumps(result))
    cluster.api("PATCH", f"{JOBS}/a-train/status", {"status": {"active": 1}})
    cluster.api("PATCH", f"{JOBS}/a-train/status", {"status": done()})
    wait_for(lambda: status(cluster, "trainingruns", "a").get("phase") == "Succeeded")


def _ensemble(cluster: Cluster) -> None:
    spec = {"members": [{"trainingRun": "a"}], "serving": {"enabled": True, "replicas": 1}}
    meta = {"name": "ens", "namespace": NS}
    ens = {"apiVersion": API_VERSION, "kind": "Ensemble", "metadata": meta, "spec": spec}
    cluster.api("POST", f"{API}/ensembles", ens)
    name = wait_for(lambda: status(cluster, "ensembles", "ens").get("jobName"), what="backtest")
    job = wait_for(lambda: cluster.api("GET", f"{JOBS}/{name}"), what="backtest Job")
    out = job["metadata"]["annotations"]["stevie.dev/run-uri"]
    report = {"members": [{"name": "a", "model_uri": "file:///m/model.zip"}], "weights": {"a": 1.0},
              "best_member": {"name": "a"},
              "splits": {"test": {"policies": {"ensemble": {"sharpe": 0.8}}}}}  # fmt: skip
    storage.write_text(storage.join(out, "report.json"), json.dumps(report))
    cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": done()})
    wait_for(lambda: cluster.api("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/ens-serve"))
    wait_for(lambda: cluster.api("GET", f"/api/v1/namespaces/{NS}/services/ens"), what="Service")


def _studies(cluster: Cluster) -> None:
    study = hpo_study("hpo")
    study["metadata"]["namespace"] = NS
    cluster.api("POST", f"{API}/hpostudies", study)
    wait_for(lambda: cluster.api("GET", f"{JOBS}/hpo-t0"), what="trial 0")
    cluster.api("PATCH", f"{JOBS}/hpo-t0/status", {"status": failed()})
    rdb = hpo_study("hpo-rdb", storage={"urlSecretRef": "study-db"})  # reads a Secret
    rdb["metadata"]["namespace"] = NS
    cluster.api("POST", f"{API}/hpostudies", rdb)
    wait_for(lambda: "study-db" in (status(cluster, "hpostudies", "hpo-rdb").get("message") or ""))
    pbt = pbt_population("pbt")
    pbt["metadata"]["namespace"] = NS
    cluster.api("POST", f"{API}/pbtpopulations", pbt)
    wait_for(lambda: cluster.api("GET", f"{JOBS}/pbt-m0-i0"), what="the first interval")


def record(cluster: Cluster, data: Path, args: list[str]) -> list[Call]:
    """Every request the operator made while one resource of each kind ran."""
    assert cluster.emulator is not None
    with operator(args) as runner:
        _training_run(cluster, data)
        _ensemble(cluster)
        _studies(cluster)
        cluster.settle()
    assert runner.exception is None
    return [c for c in cluster.emulator.calls if not c.user_agent.startswith(TEST_AGENT)]


# What kmock cannot show: blockOwnerDeletion's check on the owner's finalizers (an admission
# plugin of a real API server), and kopf's Namespace and CRD scanning (off in one-namespace
# mode, see operator()).
NOT_RECORDED = {(GROUP, f"{i.plural}/finalizers", "update") for i in KINDS.values()} | {
    ("", "namespaces", "list"), ("", "namespaces", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}  # fmt: skip

# S3 storage: with a PVC the chart serves its own namespace only (a claim is namespaced).
S3 = {"storage.pvc.create": "false", "storage.s3.uri": "s3://bucket/runs"}
MODES = {
    "all-namespaces": (["--all-namespaces"], S3),
    "one-namespace": ([f"--namespace={NS}"], {**S3, "watchNamespaces[0]": NS}),
    "leader-election": (["--all-namespaces"], {**S3, "leaderElection.enabled": "true"}),
}
LOST: list[str] = []  # why the operator lost its Lease (it would exit; here it must not)


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_chart_allows_every_call_the_operator_makes(
    mode: str, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args, sets = MODES[mode]
    grants = Grants(render(sets=sets))
    if mode == "leader-election":  # as the chart's Deployment sets it
        monkeypatch.setenv("STEVIE_LEADER_ELECTION", "true")
        monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    calls = record(cluster, tmp_path / "data", args)
    assert LOST == []
    needed = {p for p in map(permission, calls) if p is not None}
    if mode == "leader-election":  # read, created, renewed and released in its namespace
        leases = {(p.verb, p.namespace) for p in needed if p.resource == "leases"}
        assert leases == {("get", NAMESPACE), ("create", NAMESPACE), ("patch", NAMESPACE)}
    denied = sorted(p for p in needed if not grants.allows(p))
    assert denied == [], f"the chart's RBAC lacks {denied}"
    kinds = {p.resource for p in needed if p.group == GROUP}
    assert {info.plural for info in KINDS.values()} <= kinds
    assert {"jobs", "deployments", "services", "secrets", "events"} <= {p.resource for p in needed}
    print(f"\n{mode}: {len(calls)} requests, {len(needed)} distinct permission checks:")
    print(
        "\n".join(
            f"  {p.verb} {p.group or 'core'}/{p.resource} in {p.namespace}"
            for p in sorted(needed, key=str)
        )
    )
    unused = grants.granted() - {(p.group, p.resource, p.verb) for p in needed} - static_needs()
    assert unused <= NOT_RECORDED, f"granted, but nothing calls it: {unused - NOT_RECORDED}"


def _literal_paths(tree: ast.AST) -> Iterator[tuple[str, str, str]]:
    """(method, api_version, plural) of ``<x>.<method>(object_path("v", "plural", ...))``."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        for arg in node.args[:1]:
            if (
                isinstance(arg, ast.Call)
                and getattr(arg.func, "id", None) == "object_path"
                and all(isinstance(a, ast.Constant) for a in arg.args[:2])
            ):
                version, plural = (a.value for a in arg.args[:2])  # type: ignore[attr-defined]
                yield node.func.attr, str(version), str(plural)


METHOD_VERBS = {"get": "get", "list": "list", "create": "create", "merge_patch": "patch"}


def static_needs() -> set[tuple[str, str, str]]:
    """What the code asks for, read from it: literal object paths anywhere in the operator,
    and drive()'s calls on every kind (get, status patch) and child type (list, create, patch)."""
    needs = set()
    for path in sorted((ROOT / "operator" / "stevie_operator").rglob("*.py")):
        for method, version, plural in _literal_paths(ast.parse(path.read_text())):
            needs.add((version.rpartition("/")[0], plural, METHOD_VERBS[method]))
    for info in KINDS.values():
        needs |= {(GROUP, info.plural, "get"), (GROUP, f"{info.plural}/status", "patch")}
    for child in CHILD_TYPES.values():
        needs |= {(child.group, child.plural, v) for v in ("list", "create", "patch")}
    return needs


def test_the_chart_allows_what_the_code_calls() -> None:
    needs = static_needs()
    assert ("", "secrets", "get") in needs  # the HPOStudy's Secret, found in the source
    for sets in (S3, {**S3, "watchNamespaces[0]": NS}):
        grants = Grants(render(sets=sets))
        denied = sorted(n for n in needs if not grants.allows(Permission(n[2], n[0], n[1], NS)))
        assert denied == [], f"the chart's RBAC ({sets or 'all namespaces'}) lacks {denied}"
