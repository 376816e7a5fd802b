"""Status helpers every reconciler shares: merge patches, metric summaries, tolerant status
loading, the five conditions and transition Events."""

from __future__ import annotations

from datetime import UTC, datetime

from stevie_api.pbt import PBTPopulationStatus
from stevie_api.training import TrainingRunStatus
from stevie_operator.framework.admission import IMAGE_NOT_ALLOWED, REFUSED_SPEC
from stevie_operator.framework.plan import Decision, transition_events
from stevie_operator.framework.resource import load_status
from stevie_operator.framework.status import merge_patch, metric_summary

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_merge_patch_removes_and_replaces() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "gone": True}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "e": [1, 2]}
    assert merge_patch(old, new) == {"b": {"d": 4}, "e": [1, 2], "gone": None}
    assert merge_patch(new, new) == {}


def test_status_drawdown_is_a_positive_fraction_as_the_api_states() -> None:
    summary = metric_summary({"sharpe": 1.0, "max_drawdown": -0.25, "trades": 3})
    assert summary is not None and summary.max_drawdown == 0.25


def test_a_stale_status_keeps_every_field_that_still_validates() -> None:
    stored = {
        "phase": "Running",
        "intervalsCompleted": 7,
        "bestFitness": "not a number",  # retyped by an older operator
        "renamedField": {"x": 1},  # a field this version does not know
        "conditions": [{"type": "Ready", "status": "False", "reason": "Training",
                        "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    }  # fmt: skip
    status = load_status(stored, PBTPopulationStatus)
    assert status.phase == "Running" and status.intervals_completed == 7
    assert status.best_fitness is None
    assert [c.type for c in status.conditions] == ["Ready"]
    assert load_status("garbage", TrainingRunStatus) == TrainingRunStatus()
    assert load_status({"phase": "Exploded"}, TrainingRunStatus).phase is None


def test_transition_events_once_per_transition() -> None:
    before = TrainingRunStatus(phase="Running")
    done = Decision("Succeeded", "Done", "all good")
    assert [e.reason for e in transition_events(before, done, succeeded="Won")] == ["Won"]
    same = TrainingRunStatus(phase="Succeeded")
    assert transition_events(same, done, succeeded="Won") == []
    failed = Decision("Failed", "Boom", "it broke", degraded=("Boom", "it broke"))
    reasons = [(e.type, e.reason) for e in transition_events(before, failed, succeeded="Won")]
    assert reasons == [("Warning", "Boom"), ("Warning", "Boom")]
    study = transition_events(before, failed, succeeded="Won", failed="StudyFailed")
    assert [e.reason for e in study] == ["StudyFailed", "Boom"]


def test_a_refused_spec_keeps_its_reason_and_is_said_again_when_it_changes() -> None:
    """InvalidSpec and the allow-list's refusals are the spec's fault, not the run's: the
    Event says which (not the kind's own "failed" reason), and says it again for a new
    message (the user edited the spec into another refusal)."""
    before = TrainingRunStatus(phase="Running")
    for reason in REFUSED_SPEC:
        refused = Decision("Failed", reason, f"{reason}: no")
        events = transition_events(before, refused, succeeded="Won", failed="StudyFailed")
        assert [e.reason for e in events] == [reason]
    stored = TrainingRunStatus(phase="Failed")
    stored.set_condition("Failed", "True", IMAGE_NOT_ALLOWED, "image a is not allowed", now=T0)
    same = Decision("Failed", IMAGE_NOT_ALLOWED, "image a is not allowed")
    assert transition_events(stored, same, succeeded="Won") == []
    other = Decision("Failed", IMAGE_NOT_ALLOWED, "image b is not allowed")
    assert [e.message for e in transition_events(stored, other, succeeded="Won")] == [
        "image b is not allowed"
    ]


def test_status_carries_turnover_and_costs_with_bad_values_dropped() -> None:
    from dataclasses import fields

    from stevie_trainer.evaluation.performance import Performance

    report = {"sharpe": 0.4, "trades": 12, "orders": 25, "turnover": 7.5,
              "total_cost": 0.031, "cost_share": 0.62, "gross_return": 0.05}  # fmt: skip
    assert set(report) <= {f.name for f in fields(Performance)}  # the trainer's key names
    summary = metric_summary(report)
    assert summary is not None
    assert (summary.orders, summary.turnover) == (25, 7.5)
    assert (summary.total_cost, summary.cost_share) == (0.031, 0.62)
    assert summary.model_dump(by_alias=True)["totalCost"] == 0.031
    # A losing gross return has no cost share (the trainer writes null); bad values drop out
    # instead of failing the ge=0 fields.
    lost = metric_summary({"orders": -1, "turnover": float("nan"), "total_cost": -0.1,
                           "cost_share": None})  # fmt: skip
    assert lost is not None
    assert (lost.orders, lost.turnover, lost.total_cost, lost.cost_share) == (None,) * 4
