"""A walk-forward run's folds: their windows, budgets, folders and records.

:func:`plan_folds` cuts the bars before the test split into the spec's folds
(:func:`stevie_trainer.data.folds.walk_forward_folds`) and gives each its windows, its
share of the budget (:func:`fold_targets`) and its folder ``fold-<k>/``;
:func:`fold_record` is what a fold leaves in its ``fold.json`` once it is done, and
:func:`run_summary` what a run's result.json says of all of them. The training loops are
in :mod:`stevie_trainer.rl.walkforward`.

With several markets (``data.markets``), each market's bars before its own test split are
cut into the same K folds (same scheme, purge and embargo, on its own bars: markets differ
in length and dates); fold k is every market's fold k (a :class:`FoldLeg` each), trained as
one agent on all of their training windows and scored on all of their validation windows,
pooled as a single-split multi-market run pools them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from stevie_api.market import DataSpec
from stevie_api.techniques import WalkForwardSpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.data.folds import Fold, walk_forward_folds
from stevie_trainer.data.splits import SplitBounds
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.prepare import (
    Prepared,
    check_names,
    data_splits,
    load_market,
    market_specs,
    with_splits,
)
from stevie_trainer.evaluation.selection import aggregate
from stevie_trainer.rl.session import Session

__all__ = [
    "FOLD_JSON",
    "FoldLeg",
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
class FoldLeg:
    """One market's share of a fold: its real data and the fold's windows on its own bars."""

    data: DataSpec  # the market's single-market DataSpec
    frame: pd.DataFrame
    market: MarketData
    fold: Fold
    splits: SplitBounds  # the fold's train and validation windows, the market's test split

    def prepare(self, spec: TrainingRunSpec) -> Prepared:
        """The fold's training market of this market (augmented from its window only)."""
        return replace(with_splits(spec, self.frame, self.market, self.splits), data=self.data)

    def real(self, spec: TrainingRunSpec) -> Prepared:
        """The real market with the fold's splits, never augmented: the test report's."""
        market, train = self.market, self.fold.train
        return Prepared(spec, self.frame, market, self.splits, market, train, data=self.data)

    def windows(self) -> dict[str, Any]:
        """Positions (half-open) and first/last timestamps of the fold's windows."""
        index = self.market.index
        return {
            name: {"bars": list(b), "first": str(index[b[0]]), "last": str(index[b[1] - 1])}
            for name, b in (("train", self.fold.train), ("validation", self.fold.validation))
        }


@dataclass(frozen=True)
class FoldPlan:
    """One fold of a run: its windows on every market, its timestep target, its folder."""

    index: int
    count: int
    run_spec: TrainingRunSpec
    target: int  # the run's summed timesteps when this fold is done
    store: RunStore
    legs: list[FoldLeg]  # one per market, in the spec's order (a single market's one)

    @property
    def label(self) -> str:
        return f"fold {self.index + 1}/{self.count}"

    @property
    def multi_market(self) -> bool:
        return self.run_spec.data.multi_market

    def spec(self, offset: int) -> TrainingRunSpec:
        """The fold's spec after ``offset`` timesteps of the folds before it: the run's,
        training up to the fold's target (at least one step)."""
        budget = max(1, self.target - offset)
        return self.run_spec.model_copy(update={"total_timesteps": budget})

    def prepare(self, spec: TrainingRunSpec) -> Prepared:
        """The fold's training markets: one market's, or every market's as in
        :func:`~stevie_trainer.env.prepare.prepare` (episodes never cross markets)."""
        return self._combine([leg.prepare(spec) for leg in self.legs])

    def real(self, spec: TrainingRunSpec) -> Prepared:
        """The real markets with the fold's splits (the test report after the last fold)."""
        return self._combine([leg.real(spec) for leg in self.legs])

    def _combine(self, parts: list[Prepared]) -> Prepared:
        return replace(parts[0], parts=parts) if self.multi_market else parts[0]

    def windows(self) -> dict[str, Any]:
        """The fold's windows: one market's, or by market name for several."""
        if not self.multi_market:
            return self.legs[0].windows()
        return {leg.market.name: leg.windows() for leg in self.legs}


@dataclass(frozen=True)
class WalkForwardPlan:
    """A run's folds (each on every market) and its purge."""

    spec: TrainingRunSpec
    folds: list[FoldPlan]
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
    """Load the data and cut the folds, each market on its own bars (same scheme, purge and
    embargo; markets differ in length and dates); every window is checked to be tradable
    here, before anything trains (a too-short fold is a one-line DataError). ``name``: a
    single market's label."""
    wf = walk_forward(spec)
    purge = spec.env.window if wf.purge_bars is None else wf.purge_bars
    label = None if spec.data.multi_market else name
    per_market = [_market_folds(spec, data, purge, label) for data in market_specs(spec)]
    check_names([legs[0].market.name for legs in per_market])
    targets = fold_targets(spec.total_timesteps, wf.folds)
    plans = [
        FoldPlan(
            index=k,
            count=wf.folds,
            run_spec=spec,
            target=targets[k],
            store=RunStore(store.uri(f"fold-{k}")),
            legs=[legs[k] for legs in per_market],
        )
        for k in range(wf.folds)
    ]
    return WalkForwardPlan(spec, plans, purge)


def _market_folds(
    spec: TrainingRunSpec, data: DataSpec, purge: int, name: str | None
) -> list[FoldLeg]:
    """One market's share of every fold: its bars before its own test split, cut."""
    wf = walk_forward(spec)
    frame, market = load_market(data, spec.env, name)
    splits = data_splits(market, data)
    market.tradable(splits.test, "test split")
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
    for fold in folds:
        for what, bounds in (("training", fold.train), ("validation", fold.validation)):
            market.tradable(bounds, f"fold {fold.index + 1}/{len(folds)} {what} window")
    return [FoldLeg(data, frame, market, f, f.bounds(splits.test)) for f in folds]


def finished_record(plan: FoldPlan) -> dict[str, Any] | None:
    """The fold's fold.json if it is done (a rerun reads it instead of training again)."""
    done = plan.store.read_json(FOLD_JSON)
    return done if done is not None and done.get("status") == "succeeded" else None


def fold_record(plan: FoldPlan, session: Session, status: str) -> dict[str, Any]:
    """fold.json: what the run's result reports of this fold (with several markets, its
    ``validation`` is pooled over the markets' windows and ``validation_markets`` has each
    market's metrics of the same best model)."""
    state = session.state
    markets = {"validation_markets": state.best_validation_markets} if plan.multi_market else {}
    return {
        "status": status,
        "fold": plan.index,
        "windows": plan.windows(),
        "budget": session.spec.total_timesteps,
        "timesteps": int(session.model.num_timesteps),
        "validation": state.best_validation,
        **markets,
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
    folds, and the evaluations and resumes on the run's summed timestep axis. With several
    markets, ``validation`` aggregates the folds' pooled blocks (the selection score) and
    ``validation_markets`` each market's own aggregate over folds, for reading only."""
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
    extra = ("validation_markets",)
    summary: dict[str, Any] = {
        "timesteps": offset,
        "validation": aggregate([r["validation"] for r in records], wf),
        "validation_folds": [{k: r[k] for k in (*keep, *extra) if k in r} for r in records],
        "best_timesteps": last["best_timesteps"],
        "evaluations": evaluations,
        "resumed_from": resumed,
        "behaviour_cloning": last["behaviour_cloning"],
    }
    per_fold = [r.get("validation_markets") for r in records]
    if all(isinstance(m, dict) for m in per_fold):
        names = list(per_fold[0] or {})
        summary["validation_markets"] = {
            n: aggregate([(m or {}).get(n) for m in per_fold], wf) for n in names
        }
    return summary
