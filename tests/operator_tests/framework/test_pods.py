"""The shared trainer pod template and Job, for every kind: valid for Kubernetes (strict, the
oldest supported and the newest schema), deterministic, and hardened for a real cluster
(TTL, podReplacementPolicy, podFailurePolicy on the trainer's exit codes, no token, no
sidecar, no recursive chown, logs as the termination message)."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from stevie_api import exit_codes
from stevie_api.hpo import HPOStudy
from stevie_api.loader import load_resources
from stevie_api.pbt import PBTPopulation
from stevie_operator.framework.children import job_outcome
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.hpostudy.children import finish_job as hpo_finish_job
from stevie_operator.kinds.pbtpopulation.children import finish_job as pbt_finish_job
from stevie_operator.preview import fresh_body, preview
from support.paths import EXAMPLES

VERSIONS = ["1.30", kubernetes_validate.latest_version()]
FILES = ["trainingrun-quickstart.yaml", "hpo-study.yaml", "pbt-population.yaml", "ensemble.yaml"]


def children(config: OperatorConfig) -> list[dict[str, Any]]:
    """One first reconcile's children of each kind (their own plan()), and the finish Jobs."""
    found = []
    for name in FILES:
        resources = load_resources(EXAMPLES / name)
        found += [o for p in preview(resources, config) for o in p.objects]
        for res in resources:
            body = fresh_body(res, "default")
            if isinstance(res, HPOStudy):
                found.append(hpo_finish_job(HPOStudy.model_validate(body), "default", 4, config))
            if isinstance(res, PBTPopulation):
                found.append(pbt_finish_job(PBTPopulation.model_validate(body), "default", config))
    return found


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return children(OperatorConfig())


def test_one_of_each_kind(objects: list[dict[str, Any]]) -> None:
    roles = {(o["kind"], o["metadata"]["labels"].get("stevie.dev/role")) for o in objects}
    jobs = {("Job", role) for role in ("train", "trial", "interval", "finish", "backtest")}
    assert roles == jobs | {("Deployment", "serve"), ("Service", "serve")}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_job_deployment_and_service_is_valid(
    objects: list[dict[str, Any]], version: str
) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_same_inputs_same_manifests() -> None:
    first, second = children(OperatorConfig()), children(OperatorConfig())
    assert json.dumps(first) == json.dumps(second)


def test_jobs_fail_at_once_on_hopeless_exit_codes_and_ignore_disruptions(
    objects: list[dict[str, Any]],
) -> None:
    for job in by_kind(objects, "Job"):
        spec = job["spec"]
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"  # what podFailurePolicy requires
        assert spec["podReplacementPolicy"] == "Failed"
        assert spec["ttlSecondsAfterFinished"] == 86400
        ignore, fail = spec["podFailurePolicy"]["rules"]
        assert ignore == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        assert fail["action"] == "FailJob"
        assert fail["onExitCodes"]["operator"] == "In"
        assert fail["onExitCodes"]["values"] == [2, 3, 4, 5] == list(exit_codes.FAIL_JOB)
        assert exit_codes.CRASH not in fail["onExitCodes"]["values"]
        names = [c["name"] for c in pod["containers"]]
        assert names == [fail["onExitCodes"]["containerName"]]


def test_pods_are_hardened_for_a_real_cluster(objects: list[dict[str, Any]]) -> None:
    for obj in [*by_kind(objects, "Job"), *by_kind(objects, "Deployment")]:
        template = obj["spec"]["template"]
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
        (container,) = pod["containers"]
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    for job in by_kind(objects, "Job"):
        annotations = job["spec"]["template"]["metadata"]["annotations"]
        assert annotations["sidecar.istio.io/inject"] == "false"
    trial = next(j for j in objects if j["metadata"]["labels"].get("stevie.dev/role") == "trial")
    assert trial["spec"]["template"]["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false",
        "stevie.dev/trial-number": "0",
    }  # merged with the Job's own annotations


def test_the_decision_service_is_not_a_job(objects: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert not {"podFailurePolicy", "ttlSecondsAfterFinished", "podReplacementPolicy"} & set(spec)
    # a mesh may inject its sidecar into a long-running service
    assert "sidecar.istio.io/inject" not in spec["template"]["metadata"].get("annotations", {})


@pytest.mark.parametrize(
    ("raw", "ttl"), [(None, 86400), ("", 86400), (" 3600 ", 3600), ("0", None), ("60", 60)]
)
def test_job_ttl_setting(raw: str | None, ttl: int | None) -> None:
    env = {} if raw is None else {"STEVIE_JOB_TTL_SECONDS": raw}
    config = OperatorConfig.from_env(env)
    assert config.job_ttl_seconds == ttl
    job = by_kind(children(config), "Job")[0]
    assert job["spec"].get("ttlSecondsAfterFinished") == ttl
    kubernetes_validate.validate(job, "1.30", strict=True)


@pytest.mark.parametrize("raw", ["1", "59", "-1", "a day"])
def test_a_job_ttl_too_short_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="STEVIE_JOB_TTL_SECONDS"):
        OperatorConfig.from_env({"STEVIE_JOB_TTL_SECONDS": raw})


def _failed(reason: str, message: str) -> dict[str, Any]:
    condition = {"type": "Failed", "status": "True", "reason": reason, "message": message}
    return {"metadata": {"name": "run-train"}, "status": {"failed": 1, "conditions": [condition]}}


@pytest.mark.parametrize(
    ("code", "says"),
    [(3, "the trainer refused its input (exit 3), not retried"),
     (4, "the trainer found other work in its output location (exit 4)"),
     (2, "does not understand")],
)  # fmt: skip
def test_a_pod_failure_policy_failure_says_what_the_trainer_refused(code: int, says: str) -> None:
    message = (
        f"Container trainer for pod ns/run-train-x7k2p failed with exit code {code} matching "
        "FailJob rule at index 1"
    )
    phase, reason, text, _ = job_outcome(_failed("PodFailurePolicy", message))
    assert (phase, reason) == ("Failed", "PodFailurePolicy")
    assert text.startswith("Job run-train failed: ") and says in text
    assert "kubectl logs job/run-train" in text and message in text


def test_other_failures_read_as_before() -> None:
    failed = _failed("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    text = job_outcome(failed)[2]
    assert text == "Job run-train failed: Job has reached the specified backoff limit"
    odd = _failed("PodFailurePolicy", "a message from another Kubernetes version")
    assert job_outcome(copy.deepcopy(odd))[2] == (
        "Job run-train failed: a message from another Kubernetes version"
    )


def _pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] != "Service"]


def test_the_operators_trainer_account_and_s3_secret_are_the_defaults() -> None:
    """The chart names a ServiceAccount with no API permissions and the S3 credentials for
    every trainer pod; a spec's own serviceAccountName / s3SecretRef wins."""
    env = {"STEVIE_TRAINER_SERVICE_ACCOUNT": "stevie-trainer", "STEVIE_S3_SECRET": "s3-creds"}
    config = OperatorConfig.from_env(env)
    pods = _pods(children(config))
    assert {p.get("serviceAccountName") for p in pods} == {"stevie-trainer"}
    env_from = [c.get("envFrom") for p in pods for c in p["containers"]]
    assert all(e == [{"secretRef": {"name": "s3-creds"}}] for e in env_from), env_from
    unset = _pods(children(OperatorConfig.from_env({})))
    assert not any("serviceAccountName" in p for p in unset)
    assert not any("envFrom" in c for p in unset for c in p["containers"])


def test_a_specs_own_account_and_secret_win_over_the_operators() -> None:
    from stevie_api.runtime import StorageSpec
    from stevie_api.training import TrainingRun
    from stevie_operator.framework.pods import TrainerCommand, pod_template

    (run,) = load_resources(EXAMPLES / "trainingrun-quickstart.yaml")
    assert isinstance(run, TrainingRun)
    storage = StorageSpec.model_validate({"uri": "s3://b/p", "s3SecretRef": "my-creds"})
    spec = run.spec.model_copy(update={"service_account_name": "mine", "storage": storage})
    config = OperatorConfig(trainer_service_account="theirs", s3_secret="their-creds")
    template = pod_template(TrainerCommand("train", [], "s3://b/p/x"), spec, config, {})
    assert template["spec"]["serviceAccountName"] == "mine"
    assert template["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "my-creds"}}]
