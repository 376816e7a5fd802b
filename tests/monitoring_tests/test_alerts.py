"""The alert rules (charts/stevie/files/alerts.yaml): valid for promtool, complete (every
alert the chart promises, each with a for, a severity and its annotations), and each one
unit-tested firing and not firing by ``promtool test rules`` (alerts_test.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from support.paths import REPO
from support.prometheus import promtool

ALERTS = REPO / "charts" / "stevie" / "files" / "alerts.yaml"
TESTS = Path(__file__).with_name("alerts_test.yaml")
EXPECTED = {
    "StevieOperatorDown",
    "StevieReconcileErrors",
    "StevieTrainerJobsFailing",
    "StevieHPOTrialsFailing",
    "SteviePBTStalled",
    "StevieServeLatencyHigh",
    "StevieServeErrors",
}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_promised_alert_is_there_with_for_severity_and_annotations() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == EXPECTED
    for name, rule in found.items():
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    cases = yaml.safe_load(TESTS.read_text())
    assert cases["rule_files"] == [str(Path("../..") / ALERTS.relative_to(REPO))]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == quiet == EXPECTED


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(EXPECTED)} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = promtool("test", "rules", TESTS.name, cwd=TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
