"""What the values do: the schema refuses typos and contradictions, namespaces pick the RBAC
layout, leader election is a Lease (never kopf peering), storage wires env and volumes, monitoring
objects match the labels the operator's pods carry, and the generated copies do not drift."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tests.helm import CHART, CI_VALUES, NAMESPACE, ROOT, by_kind, helm, one, render
from chart_tests.helm import value_args as args_of

from stevie_api.kinds import KINDS
from stevie_operator import rbac
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import MANAGED_BY, TRAINER_METRICS_PORT, owner_labels

CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return result


def env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def refused(sets: dict[str, str]) -> str:
    done = helm("template", "s", str(CHART), *args_of(sets=sets), check=False)
    assert done.returncode != 0, f"{sets} was accepted"
    return done.stderr


def test_chart_version_is_the_package_version() -> None:
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (package, package)


def test_generated_copies_do_not_drift() -> None:
    hint = "run `make chart` (crds/ copied to charts/stevie/files/crds, rbac.yaml rendered)"
    ours = {p.name: p.read_text() for p in (CHART / "files" / "crds").glob("*.yaml")}
    source = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert ours == source, hint
    assert (ROOT / rbac.CHART_FILE).read_text() == rbac.render(), hint


def test_the_schema_refuses_unknown_keys_and_contradictions() -> None:
    assert "Additional property tga is not allowed" in refused({"image.tga": "x"})
    assert "Additional property wachNamespaces" in refused({"wachNamespaces[0]": "a"})
    refused({"monitoring.serviceMonitor.label.release": "x"})
    refused({"storage.s3.uri": "s3://b/p"})  # S3 and the default PVC at once
    refused({"storage.pvc.existingClaim": "c"})  # a created and an existing claim
    refused({"storage.pvc.create": "false"})  # no storage at all
    refused({"replicas": "2"})  # several operators without leader election
    refused({"reconcileInterval": "soon"})


def test_crds_are_the_sources_kept_and_gated() -> None:
    rendered = {c["metadata"]["name"]: c for c in by_kind(render(), "CustomResourceDefinition")}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        source = yaml.safe_load(path.read_text())
        crd = rendered.pop(source["metadata"]["name"])
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
        assert crd["spec"] == source["spec"]
    assert rendered == {}, "CRDs of no kind"
    loose = render(sets={"crds.keep": "false"})
    assert all(
        "annotations" not in c["metadata"] for c in by_kind(loose, "CustomResourceDefinition")
    )
    assert by_kind(render(sets={"crds.enabled": "false"}), "CustomResourceDefinition") == []


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip


S3 = {"storage.pvc.create": "false", "storage.s3.uri": "s3://bucket/runs"}


def test_all_namespaces_is_one_cluster_role() -> None:
    objects = render(sets=S3)
    role = one(objects, "ClusterRole")
    assert ("stevie.dev", "trainingruns/finalizers", "update") in rules_of(role)
    assert ("batch", "jobs", "create") in rules_of(role)
    assert by_kind(objects, "Role") == []
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stevie", "namespace": NAMESPACE}
    ]
    args = container(objects)["args"]
    assert args[:3] == ["run", "-m", "stevie_operator.app"]
    assert "--all-namespaces" in args and "--standalone" in args
    assert "--liveness=http://0.0.0.0:8081/healthz" in args
    probe = container(objects)["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "healthz"}


def test_pvc_storage_serves_the_release_namespace_only() -> None:
    """A claim is namespaced: pods elsewhere would mount another namespace's claim (or none)
    while the operator reads its own. So PVC storage watches the release namespace (a Role
    there), and naming another namespace fails the install, saying why."""
    for objects in (render(), render([CI["single-namespace-pvc"]])):
        args = container(objects)["args"]
        assert [a for a in args if a.startswith("--namespace")] == [f"--namespace={NAMESPACE}"]
        assert "--all-namespaces" not in args
        assert [r["metadata"]["namespace"] for r in by_kind(objects, "Role")] == [NAMESPACE]
    refused = helm("template", "stevie", str(CHART), "--namespace", NAMESPACE,
                   "--set", "watchNamespaces[0]=research", check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "research is not the release namespace" in refused.stderr
    assert "use S3 storage" in refused.stderr


def test_watch_namespaces_is_a_role_per_namespace() -> None:
    objects = render([CI["s3"]])
    namespaces = ["research", "trading"]
    roles = by_kind(objects, "Role")
    assert [r["metadata"]["namespace"] for r in roles] == namespaces
    assert [b["metadata"]["namespace"] for b in by_kind(objects, "RoleBinding")] == namespaces
    cluster = rules_of(one(objects, "ClusterRole"))
    scans = (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces"))
    assert cluster == {(g, r, v) for g, r in scans for v in ("list", "watch")}
    assert ("", "secrets", "get") in rules_of(roles[0])
    args = container(objects)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        f"--namespace={n}" for n in namespaces
    ]
    assert "--all-namespaces" not in args
    trainers = [
        s for s in by_kind(objects, "ServiceAccount") if s["metadata"]["name"].endswith("-trainer")
    ]
    assert [s["metadata"]["namespace"] for s in trainers] == namespaces
    assert all(s["automountServiceAccountToken"] is False for s in trainers)
    pod = one(objects, "PodMonitor")
    assert pod["spec"]["namespaceSelector"] == {"matchNames": namespaces}


def test_leader_election_is_a_lease_never_kopf_peering() -> None:
    plain = render()
    spec = one(plain, "Deployment")["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    assert "--standalone" in container(plain)["args"]
    assert "STEVIE_LEADER_ELECTION" not in env(plain)
    assert not [
        r for r in by_kind(plain, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    objects = render([CI["leader-election"]])
    spec = one(objects, "Deployment")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    args = container(objects)["args"]
    assert "--standalone" in args and not [a for a in args if a.startswith("--peering")]
    found = env(objects)
    assert found["STEVIE_LEADER_ELECTION"] == "true"
    assert found["STEVIE_LEADER_ELECTION_NAMESPACE"] == NAMESPACE
    assert found["STEVIE_LEADER_ELECTION_LEASE"] == "stevie"
    assert found["STEVIE_LEADER_ELECTION_HEALTH_PORT"] == "8081"  # the liveness probe's port
    assert found["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert found["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert not [o for o in objects if o["apiVersion"].startswith("kopf.dev")]
    crds = {c["metadata"]["name"] for c in by_kind(objects, "CustomResourceDefinition")}
    assert not [n for n in crds if n.endswith(".kopf.dev")]
    roles = {r["metadata"]["name"]: r for r in by_kind(objects, "Role")}
    lease_role = roles["stevie-leader-election"]
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(lease_role) == {("coordination.k8s.io", "leases", v)
                                    for v in ("create", "get", "patch")}  # fmt: skip
    bindings = {b["metadata"]["name"]: b for b in by_kind(objects, "RoleBinding")}
    binding = bindings["stevie-leader-election"]
    assert binding["roleRef"]["name"] == "stevie-leader-election"
    assert binding["subjects"][0]["name"] == container_service_account(objects)
    # The Lease is never granted cluster-wide, nor in the watched namespaces.
    assert not {r for r in rules_of(one(objects, "ClusterRole")) if r[1] == "leases"}
    namespaced = render(sets={**S3, "leaderElection.enabled": "true", "watchNamespaces[0]": "a"})
    named = {r["metadata"]["name"]: r for r in by_kind(namespaced, "Role")}
    assert not {r for r in rules_of(named["stevie"]) if r[1] == "leases"}
    assert named["stevie-leader-election"]["metadata"]["namespace"] == NAMESPACE


def container_service_account(objects: list[dict[str, Any]]) -> str:
    name: str = one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    return name


def test_pvc_storage_is_mounted_and_named_to_the_operator() -> None:
    objects = render()
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    found = env(objects)
    assert found["STEVIE_PVC"] == claim["metadata"]["name"]
    assert (found["STEVIE_STORAGE_URI"], found["STEVIE_PVC_MOUNT_PATH"]) == (
        "file:///data/stevie",
        "/data",
    )
    assert found["STEVIE_TRAINER_IMAGE"] == "ghcr.io/stevie-dev/stevie-trainer:0.1.0"
    assert found["STEVIE_METRICS_PORT"] == "8080" and found["STEVIE_RECONCILE_INTERVAL"] == "30"
    assert {"name": "data", "mountPath": "/data"} in container(objects)["volumeMounts"]
    existing = render([CI["single-namespace-pvc"]])
    assert by_kind(existing, "PersistentVolumeClaim") == []
    assert env(existing)["STEVIE_PVC"] == "shared-models"


def test_s3_storage_takes_credentials_from_a_secret() -> None:
    objects = render([CI["s3"]])
    assert by_kind(objects, "PersistentVolumeClaim") == []
    found = env(objects)
    assert found["STEVIE_STORAGE_URI"] == "s3://stevie-artifacts/runs"
    assert found["STEVIE_S3_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
    assert found["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "stevie-s3", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert found["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"
    assert found["STEVIE_JOB_TTL_SECONDS"] == "3600"
    assert "STEVIE_PVC" not in found and "STEVIE_JOB_TTL_SECONDS" not in env(render())
    assert [m["name"] for m in container(objects)["volumeMounts"]] == ["tmp"]


def test_monitors_select_what_the_operator_builds() -> None:
    objects = render([CI["single-namespace-pvc"]])
    service = one(objects, "Service")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["name"] == "metrics"
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    assert {
        "action": "replace",
        "targetLabel": "job",
        "replacement": "stevie-operator",
    } in endpoint["relabelings"]
    pods = one(objects, "PodMonitor")["spec"]
    trainer = owner_labels("TrainingRun", "run")  # what framework/pods.py puts on every pod
    assert pods["selector"]["matchLabels"].items() <= trainer.items()
    assert trainer["app.kubernetes.io/managed-by"] == MANAGED_BY
    jobs = {e["port"]: e for e in pods["podMetricsEndpoints"]}
    assert set(jobs) == {"metrics", "http"} and TRAINER_METRICS_PORT == 9090
    for port, job in (("metrics", "stevie-trainer"), ("http", "stevie-serve")):
        relabel = {r.get("targetLabel"): r for r in jobs[port]["relabelings"]}
        assert relabel["job"]["replacement"] == job
        for label in ("kind", "name", "role"):
            source = relabel[f"stevie_{label}"]["sourceLabels"]
            assert source == [f"__meta_kubernetes_pod_label_stevie_dev_{label}"]
    off = render([CI["monitoring-off"]])
    gone = ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap")
    assert not [o for o in off if o["kind"] in gone]


def test_dashboards_and_alerts_come_from_the_files(tmp_path: Path) -> None:
    chart = tmp_path / "stevie"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "dashboards", ignore_errors=True)
    (chart / "files" / "alerts.yaml").unlink(missing_ok=True)
    bare = render(chart=chart)  # neither exists yet: nothing rendered, nothing broken
    assert not [o for o in bare if o["kind"] in ("ConfigMap", "PrometheusRule")]
    (chart / "dashboards").mkdir()
    board = '{"title": "Stevie / Test", "uid": "stevie-test", "panels": []}\n'
    (chart / "dashboards" / "test_board.json").write_text(board)
    alerts = {"groups": [{"name": "stevie", "rules": [
        {"alert": "StevieDown", "expr": "up{job=\"stevie-operator\"} == 0", "for": "5m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": "{{ $labels.instance }} is down"}}]}]}  # fmt: skip
    (chart / "files" / "alerts.yaml").write_text(yaml.safe_dump(alerts))
    objects = render(chart=chart, sets={"monitoring.dashboards.labels.team": "ml"})
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["name"] == "stevie-dashboard-test-board"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["team"] == "ml"
    assert config_map["data"] == {"test_board.json": board.rstrip("\n")}
    assert one(objects, "PrometheusRule")["spec"] == alerts


def test_the_committed_dashboards_and_alerts_are_rendered() -> None:
    objects = render()
    boards = sorted((CHART / "dashboards").glob("*.json"))
    maps = by_kind(objects, "ConfigMap")
    assert sorted(k for m in maps for k in m["data"]) == [b.name for b in boards]
    alerts = CHART / "files" / "alerts.yaml"
    rules = by_kind(objects, "PrometheusRule")
    if not alerts.exists():
        assert rules == []
    else:
        assert rules[0]["spec"] == yaml.safe_load(alerts.read_text())


def notes(tmp_path: Path, sets: dict[str, str] | None = None) -> str:
    """NOTES.txt as `helm install` prints it (rendered through a ConfigMap in a copy: `helm
    template` leaves NOTES out, and `install --dry-run` wants a cluster)."""
    chart = tmp_path / "notes"
    shutil.copytree(CHART, chart, dirs_exist_ok=True)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "notes.txt")
    wrapper = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        "  labels: {app.kubernetes.io/part-of: stevie}\n"
        'data:\n  notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n'
    )
    (chart / "templates" / "zz-notes.yaml").write_text(wrapper)
    found = [o for o in render(chart=chart, sets=sets) if o["metadata"]["name"] == "notes"]
    text: str = found[0]["data"]["notes"]
    return text


def test_notes_say_how_to_apply_watch_and_find_the_dashboards(tmp_path: Path) -> None:
    text = notes(tmp_path)
    short = ",".join(info.short_name for info in KINDS.values())
    assert f"kubectl get {short}" in text and " -w" in text
    assert set(short.split(",")) == {"strun", "hpo", "pbt", "ens"}
    assert "kubectl apply" in text and "examples/trainingrun-quickstart.yaml" in text
    assert 'grafana_dashboard="1"' in text
    off = notes(tmp_path, {"monitoring.enabled": "false"})
    assert "port-forward svc/stevie-metrics 8080" in off


@pytest.mark.parametrize("name", sorted(CI))
def test_image_tag_defaults_to_app_version(name: str) -> None:
    image = container(render([CI[name]]))["image"]
    assert image == "ghcr.io/stevie-dev/stevie-operator:0.1.0"


def test_the_admission_allow_lists_reach_the_operator_only_when_set() -> None:
    plain = env(render())
    assert "STEVIE_ALLOWED_IMAGES" not in plain and "STEVIE_ALLOWED_SERVICE_ACCOUNTS" not in plain
    sets = {
        "admission.allowedImages[0]": "ghcr.io/stevie-dev/*",
        "admission.allowedImages[1]": "registry.corp/ml/*",
        "admission.allowedServiceAccounts[0]": "trainer",
    }
    found = env(render(sets=sets))
    config = OperatorConfig.from_env({k: v for k, v in found.items() if isinstance(v, str)})
    assert config.allowed_images == ("ghcr.io/stevie-dev/*", "registry.corp/ml/*")
    assert config.allowed_service_accounts == ("trainer",)
    assert "Additional property allowedImage is not allowed" in refused(
        {"admission.allowedImage[0]": "x"}
    )
    refused({"admission.allowedImages[0]": "a,b"})  # one pattern per item: a comma would split
    refused({"admission.allowedServiceAccounts[0]": "Not_A_Name"})
