"""A walk-forward run's folds: their windows, budgets, folders and records.

:func:`plan_folds` cuts the bars before the test split into the spec's folds
(:func:`stevie_trainer.data.folds.walk_forward_folds`) and gives each its windows, its
share of the budget (:func:`fold_targets`) and its folder ``fold-<k>/``;
:func:`fold_record` is what a fold leaves in its ``fold.json`` once it is done, and
:func:`run_summary` what a run's result.json says of all of them. The training loops are
in :mod:`stevie_trainer.rl.walkforward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from stevie_api.techniques import WalkForwardSpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.data.folds import Fold, walk_forward_folds
from stevie_trainer.data.splits import SplitBounds
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.prepare import Prepared, data_splits, load_market, with_splits
from stevie_trainer.evaluation.selection import aggregate
from stevie_trainer.rl.session import Session

__all__ = [
    "FOLD_JSON",
    "FoldPlan",
    "WalkForwardPlan",
    "finished_record",
    "fold_record",
    "fold_targets",
    "plan_folds",
    "run_summary",
    "walk_forward",
]

FOLD_JSON = "fold.json"


def fold_targets(total: int, folds: int) -> list[int]:
    """The run's summed timesteps once each fold is done: ``total`` split evenly.

    A fold trains up to its target less what the folds before it trained, not a fixed
    ``total / K``: PPO trains whole rollouts (nSteps x nEnvs), so a fixed share would be
    rounded up K times; this way the run ends where a single split of ``total`` would."""
    return [total * (k + 1) // folds for k in range(folds)]


@dataclass(frozen=True)
class FoldPlan:
    """One fold of a run: its windows, its timestep target, its folder."""

    fold: Fold
    count: int
    run_spec: TrainingRunSpec
    target: int  # the run's summed timesteps when this fold is done
    store: RunStore
    frame: pd.DataFrame
    market: MarketData
    splits: SplitBounds  # the fold's train and validation windows, the run's test split

    @property
    def label(self) -> str:
        return f"fold {self.fold.index + 1}/{self.count}"

    def spec(self, offset: int) -> TrainingRunSpec:
        """The fold's spec after ``offset`` timesteps of the folds before it: the run's,
        training up to the fold's target (at least one step)."""
        budget = max(1, self.target - offset)
        return self.run_spec.model_copy(update={"total_timesteps": budget})

    def prepare(self, spec: TrainingRunSpec) -> Prepared:
        """The fold's training market (augmented from its training window only)."""
        return with_splits(spec, self.frame, self.market, self.splits)

    def windows(self) -> dict[str, Any]:
        """Positions (half-open) and first/last timestamps of the fold's windows."""
        index = self.market.index
        return {
            name: {"bars": list(b), "first": str(index[b[0]]), "last": str(index[b[1] - 1])}
            for name, b in (("train", self.fold.train), ("validation", self.fold.validation))
        }


@dataclass(frozen=True)
class WalkForwardPlan:
    """A run's folds, and the real market and split its test report uses."""

    spec: TrainingRunSpec
    folds: list[FoldPlan]
    frame: pd.DataFrame
    market: MarketData
    test: tuple[int, int]
    purge: int

    def describe(self) -> dict[str, Any]:
        wf = walk_forward(self.spec)
        return {
            "folds": len(self.folds),
            "scheme": wf.scheme,
            "purge_bars": self.purge,
            "embargo_bars": wf.embargo_bars,
            "score": wf.score,
            **({"z": wf.lcb_z} if wf.score == "lcb" else {}),
            "timestep_targets": [f.target for f in self.folds],
            "final_model": self.folds[-1].store.uri("model.zip"),
        }


def walk_forward(spec: TrainingRunSpec) -> WalkForwardSpec:
    """The spec's walkForward (a ValueError for a single-split spec)."""
    wf = spec.evaluation.walk_forward
    if wf is None:
        raise ValueError("the spec has no evaluation.walkForward")
    return wf


def plan_folds(spec: TrainingRunSpec, store: RunStore, name: str | None = None) -> WalkForwardPlan:
    """Load the data and cut the folds; every window is checked to be tradable here, before
    anything trains (a too-short fold is a one-line DataError)."""
    wf = walk_forward(spec)
    frame, market = load_market(spec.data, spec.env, name)
    splits = data_splits(market, spec.data)
    market.tradable(splits.test, "test split")
    purge = spec.env.window if wf.purge_bars is None else wf.purge_bars
    folds = walk_forward_folds(
        splits,
        folds=wf.folds,
        scheme=wf.scheme,
        validation_bars=wf.validation_bars,
        train_bars=wf.train_bars,
        purge=purge,
        embargo=wf.embargo_bars,
        source=market.name,
    )
    plans = []
    for fold, target in zip(folds, fold_targets(spec.total_timesteps, len(folds)), strict=True):
        for what, bounds in (("training", fold.train), ("validation", fold.validation)):
            market.tradable(bounds, f"fold {fold.index + 1}/{len(folds)} {what} window")
        plans.append(
            FoldPlan(
                fold=fold,
                count=len(folds),
                run_spec=spec,
                target=target,
                store=RunStore(store.uri(f"fold-{fold.index}")),
                frame=frame,
                market=market,
                splits=fold.bounds(splits.test),
            )
        )
    return WalkForwardPlan(spec, plans, frame, market, splits.test, purge)


def finished_record(plan: FoldPlan) -> dict[str, Any] | None:
    """The fold's fold.json if it is done (a rerun reads it instead of training again)."""
    done = plan.store.read_json(FOLD_JSON)
    return done if done is not None and done.get("status") == "succeeded" else None


def fold_record(plan: FoldPlan, session: Session, status: str) -> dict[str, Any]:
    """fold.json: what the run's result reports of this fold."""
    state = session.state
    return {
        "status": status,
        "fold": plan.fold.index,
        "windows": plan.windows(),
        "budget": session.spec.total_timesteps,
        "timesteps": int(session.model.num_timesteps),
        "validation": state.best_validation,
        "best_timesteps": state.best_timesteps,
        "evaluations": state.evaluations,
        "resumed_from": state.resumed_from,
        "behaviour_cloning": session.bc_report,
        "curriculum": state.curriculum,
        "augmentation": session.prepared.augmentation or None,
        "finished_at": iso_now(),
    }


def run_summary(records: list[dict[str, Any]], wf: WalkForwardSpec) -> dict[str, Any]:
    """The result.json keys shared by a TrainingRun and an HPO seed: the aggregate, the
    folds, and the evaluations and resumes on the run's summed timestep axis."""
    evaluations: list[dict[str, Any]] = []
    resumed: list[int] = []
    offset = 0
    for r in records:
        for e in r["evaluations"]:
            evaluations.append({"fold": r["fold"], **e, "run_timesteps": offset + e["timesteps"]})
        resumed += [offset + t for t in r["resumed_from"]]
        offset += r["timesteps"]
    last = records[-1]
    keep = ("fold", "windows", "budget", "timesteps", "best_timesteps", "validation")
    return {
        "timesteps": offset,
        "validation": aggregate([r["validation"] for r in records], wf),
        "validation_folds": [{k: r[k] for k in keep} for r in records],
        "best_timesteps": last["best_timesteps"],
        "evaluations": evaluations,
        "resumed_from": resumed,
        "behaviour_cloning": last["behaviour_cloning"],
    }
