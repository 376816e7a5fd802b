"""The chart renders and lints for every ci/*-values.yaml, and every object it renders is
valid: kubernetes-validate (strict) for built-in kinds, the CRDs' own openAPIV3Schema for
custom resources, prometheus-operator's published models for monitoring.coreos.com kinds,
and the restricted Pod Security Standard for every pod template."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from chart_tests.helm import CHART, CI_VALUES, helm, load_yaml, render
from chart_tests.pss import pod_specs, violations

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest whose
# schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CUSTOM_GROUPS = ("stevie.dev",)
MONITORING = "monitoring.coreos.com/v1"


def crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD rendered or in the chart's files."""
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for path in sorted((CHART / "files" / "crds").glob("*.yaml")):
        crds += load_yaml(path)
    found = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            found[key] = version["schema"]["openAPIV3Schema"]
    return found


def validate_monitoring(obj: dict[str, Any]) -> None:
    """Against cloudcoil's models of prometheus-operator's CRDs: the model must parse it and
    give every field back (a field the model drops is one the CRD does not have)."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, obj["kind"])
    parsed = model.model_validate(obj)
    back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert back == obj, f"{obj['kind']} has fields its CRD does not know"


def validate(obj: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    """One rendered object, by where its schema comes from."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group = api_version.rpartition("/")[0]
    if api_version == MONITORING:
        validate_monitoring(obj)
    elif group in CUSTOM_GROUPS:
        jsonschema.validate(obj, schemas[(api_version, kind)])
    else:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint(values: Path) -> None:
    done = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_rendered_object_is_valid(values: Path) -> None:
    objects = render([values])
    kinds = Counter(o["kind"] for o in objects)
    assert kinds["Deployment"] == 1 and kinds["ServiceAccount"] >= 1, kinds
    schemas = crd_schemas(objects)
    for obj in objects:
        validate(obj, schemas)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stevie", obj["kind"]
    pods = [spec for obj in objects for spec in pod_specs(obj)]
    assert pods, "no pod template rendered"
    for where, spec in pods:
        assert violations(spec) == [], where


def test_the_pss_check_catches_what_the_profile_refuses() -> None:
    """The checker itself: each relaxation of the chart's operator pod is reported."""
    deployment = next(o for o in render() if o["kind"] == "Deployment")
    (_, spec), *_ = pod_specs(deployment)
    assert violations(spec) == []
    container = spec["containers"][0]
    relaxations: list[tuple[str, Any]] = [
        ("allowPrivilegeEscalation", True),
        ("capabilities", {"drop": ["NET_RAW"]}),
        ("runAsNonRoot", False),
        ("privileged", True),
        ("seccompProfile", {"type": "Unconfined"}),
    ]
    for key, value in relaxations:
        bad = {**spec, "containers": [{**container, "securityContext": {
            **container["securityContext"], key: value}}]}  # fmt: skip
        if key == "runAsNonRoot":
            bad["securityContext"] = {**spec["securityContext"], "runAsNonRoot": False}
        assert violations(bad), key
    assert violations({**spec, "hostNetwork": True})
    host = {"name": "host", "hostPath": {"path": "/"}}
    assert violations({**spec, "volumes": [*spec["volumes"], host]})
