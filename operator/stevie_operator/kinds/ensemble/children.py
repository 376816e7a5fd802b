"""Where an Ensemble lives and its children: the backtest Job of each version, then (with
``serving.enabled``) the decision service's Deployment and Service. Pure functions, on the
shared trainer pod template (:func:`stevie_operator.framework.pods.pod_template`).

A *version* is a hash of what decides (the members' sources, their fixed weights, the
method, the weights' metric, the reweight window and the backtest data): each version has
its own folder ``<ensemble>/versions/<version>/`` holding ``spec.json`` and ``members.json``
(written before the Job exists), then the backtest's outputs: ``report.json``,
``ensemble.json`` (what the service loads), plots and tables.

* backtest: ``python -m stevie_trainer ensemble-backtest --ensemble-spec <v>/spec.json
  --members-json <v>/members.json --out <v>``, Job ``<name>-bt-<version>``;
* service: ``python -m stevie_trainer ensemble-serve --ensemble <v>/ensemble.json --port P
  --log-uri <ensemble>/decisions/<version>``, Deployment ``<name>-serve`` (its pod template
  carries the version, so a new version rolls it), Service ``<name>`` (ClusterIP).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from stevie_api.changes import normalized
from stevie_api.ensemble import Ensemble
from stevie_api.market import DataSpec
from stevie_api.naming import child_name, label_value
from stevie_operator.framework.artifacts import resource_root
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import (
    KIND_LABEL,
    NAME_LABEL,
    ROLE_LABEL,
    Owner,
    TrainerCommand,
    owner_labels,
    pod_template,
    trainer_job,
)
from stevie_trainer.common import storage

__all__ = [
    "ERROR_NAME",
    "MEMBERS_NAME",
    "REPORT_NAME",
    "SPEC_NAME",
    "VERSION_ANNOTATION",
    "backtest_job",
    "backtest_job_name",
    "deployment",
    "deployment_name",
    "ensemble_dir",
    "service",
    "service_url",
    "version_dir",
    "version_of",
]

SPEC_NAME = "spec.json"
MEMBERS_NAME = "members.json"
REPORT_NAME = "report.json"
ERROR_NAME = "error.json"
VERSION_ANNOTATION = "stevie.dev/ensemble-version"
HEALTH_LIVE = "/v2/health/live"
HEALTH_READY = "/v2/health/ready"


def ensemble_dir(ens: Ensemble, namespace: str, config: OperatorConfig) -> str:
    """``<storage root>/<namespace>/ensembles/<name>/<uid>``
    (:func:`~stevie_operator.framework.artifacts.artifact_root`)."""
    root = ens.spec.storage.uri or config.storage_uri
    return resource_root(root, namespace, ens.kind, ens.metadata, config.local)


def _digest(ens: Ensemble, members: Sequence[Mapping[str, Any]], data: Any) -> str:
    spec = ens.spec
    doc = {
        "members": list(members),
        "method": spec.method,
        "weightMetric": spec.weight_metric,
        "reweightWindow": spec.reweight_window,
        "data": data,
    }
    # The acting rules enter only when set, so the versions of the specs without them stay.
    for key, value in (("noTradeBand", spec.no_trade_band), ("minHoldBars", spec.min_hold_bars)):
        if value is not None:
            doc[key] = value
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def version_of(
    ens: Ensemble, members: Sequence[Mapping[str, Any]], known: str | None = None
) -> str:
    """The version of what decides (10 hex digits). The data spec is hashed normalised
    (:func:`stevie_api.changes.normalized`), so a DataSpec field added with a default makes
    no new version (no new backtest, no Deployment roll). ``known`` (the status's version)
    is kept when it is this spec's version as hashed before (defaults spelled out), so the
    upgrade to the normalised hash re-runs nothing either."""
    data = ens.spec.data
    version = _digest(ens, members, normalized(data, DataSpec) if data else None)
    if known is not None and known != version:
        legacy = _digest(ens, members, data.to_dict() if data else None)
        return known if known == legacy else version
    return version


def version_dir(ens: Ensemble, namespace: str, config: OperatorConfig, version: str) -> str:
    return storage.join(ensemble_dir(ens, namespace, config), "versions", version)


def backtest_job_name(name: str, version: str) -> str:
    return child_name(name, f"-bt-{version[:8]}")


def backtest_job(
    ens: Ensemble, namespace: str, config: OperatorConfig, version: str
) -> dict[str, Any]:
    """The Job that backtests this version (members resolved and loaded in the pod)."""
    out = version_dir(ens, namespace, config, version)
    args = ["--ensemble-spec", storage.join(out, SPEC_NAME)]
    args += ["--members-json", storage.join(out, MEMBERS_NAME), "--out", out]
    return trainer_job(
        name=backtest_job_name(ens.metadata.name, version),
        namespace=namespace,
        owner=Owner.of(ens),
        run_spec=ens.spec,
        config=config,
        run=TrainerCommand("ensemble-backtest", args, out),
        labels={ROLE_LABEL: "backtest", VERSION_ANNOTATION: version},
    )


def deployment_name(name: str) -> str:
    return child_name(name, "-serve")


def _selector(ens: Ensemble) -> dict[str, str]:
    return {
        KIND_LABEL: ens.kind,
        NAME_LABEL: label_value(ens.metadata.name),
        ROLE_LABEL: "serve",
    }


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def deployment(
    ens: Ensemble, namespace: str, config: OperatorConfig, version: str
) -> dict[str, Any]:
    """The decision service: ``serving.replicas`` pods of this version, rolled one at a
    time with none unavailable (a new version waits for ready pods before the old go)."""
    port = ens.spec.serving.port
    base = ensemble_dir(ens, namespace, config)
    doc = storage.join(version_dir(ens, namespace, config, version), "ensemble.json")
    args = ["--ensemble", doc, "--host", "0.0.0.0", "--port", str(port)]
    args += ["--log-uri", storage.join(base, "decisions", version)]
    owner = Owner.of(ens)
    labels = {**owner_labels(owner.kind, owner.name, owner.labels), **_selector(ens)}
    labels["app.kubernetes.io/component"] = "decision-service"
    run = TrainerCommand("ensemble-serve", args, base)
    template = pod_template(
        run, ens.spec, config, labels, restart="Always", annotations={VERSION_ANNOTATION: version}
    )
    container = template["spec"]["containers"][0]
    container["name"] = "decision-service"
    # The service's own /metrics is on its HTTP port: the trainer's metrics port is not used.
    container["ports"] = [{"name": "http", "containerPort": port}]
    container["env"] = [e for e in container["env"] if e["name"] != "STEVIE_METRICS_PORT"]
    container["readinessProbe"] = _probe(HEALTH_READY, 5, 3)
    container["livenessProbe"] = {**_probe(HEALTH_LIVE, 10, 3), "initialDelaySeconds": 10}
    container["startupProbe"] = _probe(HEALTH_READY, 5, 60)  # model loading: up to 5 min
    metadata: dict[str, Any] = {
        "name": deployment_name(ens.metadata.name),
        "namespace": namespace,
        "labels": labels,
        "annotations": {VERSION_ANNOTATION: version},
    }
    if owner.reference():
        metadata["ownerReferences"] = owner.reference()
    spec = {
        "replicas": ens.spec.serving.replicas,
        "selector": {"matchLabels": _selector(ens)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": template,
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def service(ens: Ensemble, namespace: str) -> dict[str, Any]:
    """The ClusterIP Service in front of the decision service's pods."""
    owner = Owner.of(ens)
    labels = {**owner_labels(owner.kind, owner.name, owner.labels), **_selector(ens)}
    metadata: dict[str, Any] = {"name": ens.metadata.name, "namespace": namespace, "labels": labels}
    if owner.reference():
        metadata["ownerReferences"] = owner.reference()
    port = ens.spec.serving.port
    spec = {
        "type": "ClusterIP",
        "selector": _selector(ens),
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def service_url(ens: Ensemble, namespace: str) -> str:
    return f"http://{ens.metadata.name}.{namespace}.svc:{ens.spec.serving.port}"
