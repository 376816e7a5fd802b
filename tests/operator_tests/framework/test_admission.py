"""The operator's allow-list of images and ServiceAccounts: the matcher, the settings, and
what each kind's reconciler does with a refused spec (Failed with the reason, no child)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stevie_api.hpo import HPOStudy
from stevie_api.training import TrainingRun
from stevie_operator.framework.admission import (
    IMAGE_NOT_ALLOWED,
    SERVICE_ACCOUNT_NOT_ALLOWED,
    image_allowed,
    refusal,
    service_account_allowed,
)
from stevie_operator.framework.config import DEFAULT_TRAINER_IMAGE, OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import validate
from stevie_operator.kinds.ensemble.reconcile import Observed as EnsembleObserved
from stevie_operator.kinds.ensemble.reconcile import reconcile_ensemble
from stevie_operator.kinds.hpostudy import study as hpo_study
from stevie_operator.kinds.hpostudy.children import journal_location
from stevie_operator.kinds.hpostudy.reconcile import Observed as StudyObserved
from stevie_operator.kinds.hpostudy.reconcile import reconcile_hpo_study
from stevie_operator.kinds.pbtpopulation.reconcile import Observed as PopulationObserved
from stevie_operator.kinds.pbtpopulation.reconcile import reconcile_pbt
from stevie_operator.kinds.trainingrun.reconcile import Observed as RunObserved
from stevie_operator.kinds.trainingrun.reconcile import reconcile_training_run
from support import specs

T0 = datetime(2025, 1, 1, tzinfo=UTC)
OURS = "ghcr.io/stevie-dev/*,registry.corp/ml/*"
FOREIGN = "docker.io/attacker/miner:latest"
LOCKED = OperatorConfig.from_env(
    {"STEVIE_ALLOWED_IMAGES": OURS, "STEVIE_ALLOWED_SERVICE_ACCOUNTS": "trainer, reader,"}
)


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "team", "uid": "u1", "generation": 1}


def training_run(**spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun", "metadata": meta("run")}
    return {**body, "spec": specs.template(**spec)}


def failed(plan: Plan[Any]) -> tuple[str, str]:
    (cond,) = [c for c in plan.status["conditions"] if c["type"] == "Failed"]
    assert plan.phase == "Failed" and cond["status"] == "True"
    assert not plan.children and not plan.updates
    return cond["reason"], cond["message"]


def test_the_settings_are_comma_separated_and_empty_allows_anything() -> None:
    assert LOCKED.allowed_images == ("ghcr.io/stevie-dev/*", "registry.corp/ml/*")
    assert LOCKED.allowed_service_accounts == ("trainer", "reader")
    open_ = OperatorConfig.from_env({"STEVIE_ALLOWED_IMAGES": " , "})
    assert open_.allowed_images == () and open_.allowed_service_accounts == ()
    assert image_allowed(FOREIGN, open_) and service_account_allowed("admin", open_)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("ghcr.io/stevie-dev/stevie-trainer:0.2.0", True),
        ("registry.corp/ml/ppo@sha256:abc", True),
        (DEFAULT_TRAINER_IMAGE, True),  # the operator's default, whatever the list says
        (FOREIGN, False),
        ("ghcr.io/stevie-dev-evil/x:1", False),  # the pattern's "/" is not optional
        ("GHCR.IO/stevie-dev/x:1", False),  # case-sensitive, as the registry is for paths
        ("stevie-trainer:0.1.0", False),  # matched as written: no registry filled in
    ],
)
def test_images_match_the_patterns(image: str, allowed: bool) -> None:
    assert image_allowed(image, LOCKED) is allowed


def test_service_accounts_are_exact_names_and_the_operators_default_is_allowed() -> None:
    assert service_account_allowed("trainer", LOCKED)
    assert not service_account_allowed("trainer-admin", LOCKED)
    config = OperatorConfig(allowed_service_accounts=("a",), trainer_service_account="stevie")
    assert service_account_allowed("stevie", config)


def test_the_refusal_names_the_field_the_value_and_the_list() -> None:
    run = validate(training_run(image=FOREIGN), TrainingRun)
    assert not isinstance(run, list)
    reason, message = refusal(LOCKED, ("spec", run.spec)) or ("", "")
    assert reason == IMAGE_NOT_ALLOWED
    assert f"spec.image {FOREIGN!r}" in message
    assert "STEVIE_ALLOWED_IMAGES" in message and OURS.replace(",", ", ") in message
    ok = validate(training_run(), TrainingRun)
    assert not isinstance(ok, list) and refusal(LOCKED, ("spec", ok.spec)) is None


def test_a_training_run_with_a_foreign_image_gets_no_job() -> None:
    body = training_run(image=FOREIGN)
    plan = reconcile_training_run(body, RunObserved(now=T0), LOCKED)
    reason, message = failed(plan)
    assert reason == IMAGE_NOT_ALLOWED and FOREIGN in message
    assert [e.reason for e in plan.events] == [IMAGE_NOT_ALLOWED]
    assert plan.status.get("jobName") is None
    # The operator's list changes (or the spec is fixed): the run starts, like a fixed spec.
    body["status"] = plan.status
    again = reconcile_training_run(body, RunObserved(now=T0), OperatorConfig())
    assert again.phase == "Pending" and [c.kind for c in again.children] == ["Job"]


def test_a_training_run_with_an_allowed_image_gets_its_job() -> None:
    image = "registry.corp/ml/trainer:1.2"
    plan = reconcile_training_run(training_run(image=image), RunObserved(now=T0), LOCKED)
    (job,) = plan.children
    assert job.manifest["spec"]["template"]["spec"]["containers"][0]["image"] == image
    default = reconcile_training_run(training_run(), RunObserved(now=T0), LOCKED)
    assert default.phase == "Pending" and len(default.children) == 1


def test_a_foreign_service_account_is_refused() -> None:
    body = training_run(serviceAccountName="namespace-admin")
    reason, message = failed(reconcile_training_run(body, RunObserved(now=T0), LOCKED))
    assert reason == SERVICE_ACCOUNT_NOT_ALLOWED
    assert "spec.serviceAccountName 'namespace-admin'" in message
    assert "STEVIE_ALLOWED_SERVICE_ACCOUNTS is trainer, reader" in message
    listed = training_run(serviceAccountName="reader")
    plan = reconcile_training_run(listed, RunObserved(now=T0), LOCKED)
    assert plan.children[0].manifest["spec"]["template"]["spec"]["serviceAccountName"] == "reader"


def hpo_body(image: str | None = None) -> dict[str, Any]:
    doc = specs.hpo_study("hpo")
    if image is not None:
        doc["spec"]["template"]["image"] = image
    return {**doc, "metadata": meta("hpo")}


def test_an_hpo_study_with_a_foreign_template_image_asks_no_trial() -> None:
    plan = reconcile_hpo_study(hpo_body(FOREIGN), StudyObserved(now=T0), LOCKED)
    reason, message = failed(plan)
    assert reason == IMAGE_NOT_ALLOWED and "spec.template.image" in message
    assert not plan.work  # nothing asked of Optuna
    assert [e.reason for e in plan.events] == [IMAGE_NOT_ALLOWED]


def test_an_hpo_study_with_an_allowed_template_image_creates_trial_jobs(tmp_path: Path) -> None:
    image = "ghcr.io/stevie-dev/stevie-trainer:9"
    config = OperatorConfig(
        storage_uri=(tmp_path / "d").as_uri(), allowed_images=LOCKED.allowed_images
    )
    body = hpo_body(image)
    study = validate(body, HPOStudy)
    assert not isinstance(study, list)
    location = journal_location(study, "team", config)
    assert location is not None
    storages = hpo_study.StudyStorages()

    def observed() -> StudyObserved:
        return StudyObserved(now=T0, view=hpo_study.observe(storages, study, location))

    plan = reconcile_hpo_study(body, observed(), config)
    assert plan.work and plan.work.ask == 2
    hpo_study.apply(storages, study, location, plan.work.fail, plan.work.ask)
    plan = reconcile_hpo_study(body, observed(), config)
    images = {c.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
              for c in plan.children}  # fmt: skip
    assert len(plan.children) == 2 and images == {image}


def test_a_pbt_population_with_a_foreign_template_image_saves_nothing() -> None:
    doc = specs.pbt_population("pop")
    doc["spec"]["template"]["image"] = FOREIGN
    body = {**doc, "metadata": meta("pop")}
    plan = reconcile_pbt(body, PopulationObserved(now=T0), LOCKED)
    assert failed(plan)[0] == IMAGE_NOT_ALLOWED and plan.work is None
    doc["spec"]["template"]["image"] = "registry.corp/ml/t:1"
    allowed = reconcile_pbt(copy.deepcopy(body), PopulationObserved(now=T0), LOCKED)
    assert allowed.phase != "Failed" and allowed.children and allowed.work is not None


def ensemble(**spec: Any) -> dict[str, Any]:
    members = [{"name": "a", "uri": "s3://m/a.zip"}, {"name": "b", "uri": "s3://m/b.zip"}]
    body = {"apiVersion": "stevie.dev/v1alpha1", "kind": "Ensemble", "metadata": meta("ens")}
    return {**body, "spec": {"members": members, **spec}}


def test_an_ensemble_with_a_foreign_image_gets_no_backtest_or_service() -> None:
    plan = reconcile_ensemble(ensemble(image=FOREIGN), EnsembleObserved(now=T0), LOCKED)
    assert failed(plan)[0] == IMAGE_NOT_ALLOWED and plan.work is None
    account = ensemble(serviceAccountName="other")
    assert failed(reconcile_ensemble(account, EnsembleObserved(now=T0), LOCKED))[0] == (
        SERVICE_ACCOUNT_NOT_ALLOWED
    )
    allowed = reconcile_ensemble(ensemble(), EnsembleObserved(now=T0), LOCKED)
    assert allowed.phase == "Running" and [c.kind for c in allowed.children] == ["Job"]
