"""The ensemble backtest: the ensemble, every member alone, every voting method and the
baselines, on the same bars of each split, in the same simulator.

Fairness: every run pays the same costs and follows the same rules (fee, slippage, borrow,
maintenance margin, rebalancing): the first member's. The ensemble trades the grid of its
members' levels (:attr:`Ensemble.grid`) under its own no-trade band and minimum hold
(:attr:`Ensemble.env`); a member alone trades its own levels under its own band and hold,
and observes its own features and window, as in training (band and hold are rules of the
action scheme the agent learnt, not costs to share); the baselines trade in the ensemble's
simulator. All runs start at the first bar every member can observe (the widest warm-up),
so every equity curve covers the same bars.

The ensemble decides through :meth:`Ensemble.decide` at each bar, from the account it
trades (:meth:`AccountState.of`), with the weights :meth:`Ensemble.weight_path` gives for
the split's decision bars: static weights come from the members' validation metrics
(result.json), dynamic ones from shadow votes on the bars before each decision.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import DataSpec, EnvSpec
from stevie_trainer.data.ohlcv import DataError, require_bars
from stevie_trainer.ensemble.agent import AccountState, Member
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.ensemble.voting import METHODS, Decision, Method
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.market import Bounds, MarketData
from stevie_trainer.env.prepare import data_splits
from stevie_trainer.evaluation.baselines import BASELINES, make_baseline
from stevie_trainer.evaluation.episode import Episode, run_policy
from stevie_trainer.evaluation.performance import annualisation_note

__all__ = [
    "ENSEMBLE",
    "RULES",
    "SPLITS",
    "Backtest",
    "EnsemblePolicy",
    "Record",
    "SplitRun",
    "common_bounds",
    "comparison",
    "ensemble_env",
    "rules_env",
    "run_backtest",
    "run_ensemble",
    "run_split",
    "split_summary",
    "with_method",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Log = Callable[[str], None]

ENSEMBLE = "ensemble"
SPLITS = ("validation", "test")
# The costs and rules every run of a backtest shares (the first member's). Not the no-trade
# band and the minimum hold: each member alone keeps its own, the ensemble has its own.
RULES = (
    "fee_bps",
    "slippage_bps",
    "borrow_bps",
    "maintenance_margin",
    "rebalance",
    "rebalance_drift",
)


@dataclass(frozen=True)
class Record:
    """One decision of the ensemble: the bar it was taken at (after its close)."""

    bar: int
    time: pd.Timestamp
    decision: Decision


class EnsemblePolicy:
    """The ensemble as a :class:`~stevie_trainer.evaluation.baselines.Policy` of one account.

    ``weights`` are the members' weights at decision bars ``first, first + 1, ...``
    (:meth:`Ensemble.weight_path`); every decision is kept in :attr:`records`.
    """

    def __init__(
        self,
        ensemble: Ensemble,
        markets: Sequence[MarketData],
        weights: F64,
        first: int,
        name: str = ENSEMBLE,
    ) -> None:
        self.ensemble = ensemble
        self.markets = list(markets)
        self.weights = weights
        self.first = first
        self.name = name
        self.records: list[Record] = []

    def act(self, obs: F32, accounts: Accounts) -> I64:
        t = int(accounts.t[0])
        k = t - self.first
        if not 0 <= k < len(self.weights):
            raise IndexError(f"no weights for bar {t} (weights cover bars {self.first}..)")
        decision = self.ensemble.decide(
            self.markets, t, self.weights[k], AccountState.of(accounts, 0)
        )
        self.records.append(Record(t, self.markets[0].index[t], decision))
        return accounts.actions_for_targets(np.array([decision.level]))


def rules_env(env: EnvSpec, rules: EnvSpec) -> EnvSpec:
    """``env`` (its positions, features and window) with the costs and rules of ``rules``."""
    return env.model_copy(update={k: getattr(rules, k) for k in RULES})


def ensemble_env(ensemble: Ensemble) -> EnvSpec:
    """The ensemble's simulator (:attr:`Ensemble.env`): the first member's costs, trading
    the grid of levels under the ensemble's band and hold."""
    return ensemble.env


def with_method(ensemble: Ensemble, method: Method) -> Ensemble:
    """The same members, grid and weights, voting by ``method``."""
    other = copy.copy(ensemble)
    other.method = method
    return other


def common_bounds(markets: Sequence[MarketData], bounds: Bounds, what: str) -> Bounds:
    """``bounds`` starting at the first bar every market can trade: the same bars for all."""
    start = max(m.tradable(bounds, what)[0] for m in markets)
    require_bars(bounds[1] - start, 2, what, reason="a decision and its fill after warm-up")
    return start, bounds[1]


def run_ensemble(
    ensemble: Ensemble,
    markets: Sequence[MarketData],
    bounds: Bounds,
    weights: F64,
    *,
    name: str = ENSEMBLE,
    split_name: str = "data",
) -> tuple[Episode, list[Record]]:
    """One pass of the ensemble over ``bounds`` (from ``common_bounds``) with ``weights`` at
    its decision bars ``bounds[0]..bounds[1] - 2``."""
    policy = EnsemblePolicy(ensemble, markets, weights, bounds[0], name)
    episode = run_policy(markets[0], ensemble_env(ensemble), bounds, policy, split_name=split_name)
    return episode, policy.records


@dataclass
class SplitRun:
    """Every policy on one split: the ensemble, members and baselines, and every method."""

    split: str
    bounds: Bounds  # half-open: decisions from bounds[0], last bar bounds[1] - 1
    method: Method  # the ensemble's own
    weights: F64  # [decisions, members]
    episodes: dict[str, Episode]  # "ensemble", each member, each baseline
    methods: dict[str, Episode]  # every voting method (the ensemble's own too)
    records: dict[str, list[Record]]  # the decisions of every method

    @property
    def decisions(self) -> list[Record]:
        """The ensemble's own decisions."""
        return self.records[self.method]


def run_split(
    ensemble: Ensemble,
    markets: Sequence[MarketData],
    bounds: Bounds,
    split: str,
    *,
    methods: Sequence[Method] = METHODS,
    baselines: Sequence[str] = BASELINES,
    log: Log | None = None,
) -> SplitRun:
    """The ensemble (every method), each member alone and the baselines on ``bounds``."""
    say = log or (lambda _: None)
    what = f"{split} split"
    span = common_bounds(markets, bounds, what)
    bars = np.arange(span[0], span[1] - 1, dtype=np.int64)
    weights = ensemble.weight_path(markets, markets[0].close, bars)
    order = [ensemble.method, *(m for m in methods if m != ensemble.method)]
    runs: dict[str, Episode] = {}
    records: dict[str, list[Record]] = {}
    for method in order:
        say(f"{what}: ensemble voting by {method} over {len(bars)} bars")
        runs[method], records[method] = run_ensemble(
            with_method(ensemble, method), markets, span, weights, name=method, split_name=what
        )
    episodes = {ENSEMBLE: runs[ensemble.method]}
    episodes |= members_alone(ensemble, markets, span, what)
    episodes |= run_baselines(ensemble, markets[0], span, what, baselines)
    return SplitRun(split, span, ensemble.method, weights, episodes, runs, records)


def members_alone(
    ensemble: Ensemble, markets: Sequence[MarketData], bounds: Bounds, what: str
) -> dict[str, Episode]:
    """Each member's greedy policy, on its own view of the bars, with the shared costs and
    its own band and hold."""
    rules = ensemble.members[0].env
    return {
        m.name: run_policy(mk, rules_env(m.env, rules), bounds, m.policy, split_name=what)
        for m, mk in zip(ensemble.members, markets, strict=True)
    }


def run_baselines(
    ensemble: Ensemble, market: MarketData, bounds: Bounds, what: str, names: Sequence[str]
) -> dict[str, Episode]:
    """Buy-and-hold, the expert and random in the ensemble's simulator."""
    first: Member = ensemble.members[0]
    env = ensemble_env(ensemble)
    indicators = market.features.indicators
    return {
        b: run_policy(
            market,
            env,
            bounds,
            make_baseline(b, indicators, first.spec.expert, seed=first.spec.seed),
            split_name=what,
        )
        for b in names
    }


@dataclass
class Backtest:
    """The ensemble's backtest on the validation and the test split of ``data``."""

    ensemble: Ensemble
    data: DataSpec
    label: str  # the data's name in reports
    markets: list[MarketData]
    splits: dict[str, SplitRun]

    @property
    def bars_per_year(self) -> float:
        return self.markets[0].bars_per_year

    @property
    def bar_size(self) -> str:
        return self.markets[0].bar_size

    @property
    def annualisation_note(self) -> str:
        source = "set in spec" if self.data.bars_per_year else "measured from data"
        return annualisation_note(self.bars_per_year, self.bar_size, source=source)


def run_backtest(
    ensemble: Ensemble,
    frame: pd.DataFrame,
    data: DataSpec,
    label: str,
    *,
    methods: Sequence[Method] = METHODS,
    log: Log | None = None,
) -> Backtest:
    """Validation and test split of ``frame`` (split as ``data`` says), every policy."""
    markets = ensemble.markets(frame, data.bars_per_year)
    try:
        splits = data_splits(markets[0], data)
        runs = {
            s: run_split(ensemble, markets, splits.get(s), s, methods=methods, log=log)
            for s in SPLITS
        }
    except DataError as err:
        raise DataError(f"backtest data {label}: {err}") from None
    return Backtest(ensemble, data, label, markets, runs)


# --- metrics of a backtest (report.json's sections) -------------------------------------

Metrics = dict[str, Any]
KEY_METRICS = ("sharpe", "total_return", "max_drawdown")


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def split_summary(run: SplitRun, names: Sequence[str]) -> dict[str, Any]:
    """One split's section of report.json (``names``: the members, in order)."""
    ens = run.episodes[ENSEMBLE]
    records = run.decisions
    levels = np.array([r.decision.level for r in records])
    votes = np.array([r.decision.votes for r in records]).reshape(len(records), len(names))
    return {
        "period": {
            "first_decision": str(ens.timestamps[0]),
            "last_bar": str(ens.timestamps[-1]),
            "decisions": len(records),
        },
        "policies": {k: ep.performance().to_dict() for k, ep in run.episodes.items()},
        "methods": {k: ep.performance().to_dict() for k, ep in run.methods.items()},
        "ensemble": {
            "method": run.method,
            "mean_consensus": _mean([r.decision.consensus for r in records]),
            "mean_confidence": _mean([r.decision.confidence for r in records]),
            "agreement": {n: _mean(list(votes[:, i] == levels)) for i, n in enumerate(names)},
            "mean_weights": {n: float(run.weights[:, i].mean()) for i, n in enumerate(names)},
        },
    }


def _key(metrics: Metrics) -> dict[str, Any]:
    return {k: metrics.get(k) for k in KEY_METRICS}


def _better(a: float | None, b: float | None) -> bool | None:
    """a > b: a higher Sharpe or return, a shallower (less negative) max drawdown."""
    return None if a is None or b is None else a > b


def _best(candidates: Mapping[str, Metrics], metric: str = "sharpe") -> str:
    """The name with the best ``metric`` (undefined counts as worst; ties: the first)."""

    def score(name: str) -> float:
        value = candidates[name].get(metric)
        return -math.inf if value is None else float(value)

    return max(candidates, key=score)


def comparison(splits: Mapping[str, Any], names: Sequence[str], method: str) -> dict[str, Any]:
    """Best member by validation Sharpe; the ensemble vs it and vs buy-and-hold on test."""
    val, test = splits["validation"]["policies"], splits["test"]["policies"]
    best = _best({n: val[n] for n in names})
    chosen = _best(splits["validation"]["methods"])
    hindsight = _best({n: test[n] for n in names})
    ens = test[ENSEMBLE]
    versus = {}
    for label, other in (("best_member", test[best]), ("buy_and_hold", test["buy-and-hold"])):
        versus[label] = _key(other) | {
            "ensemble_better": {k: _better(ens.get(k), other.get(k)) for k in KEY_METRICS}
        }
    return {
        "best_member": {
            "name": best,
            "chosen_by": "validation Sharpe, in the shared simulator",
            "validation": _key(val[best]),
            "test": _key(test[best]),
        },
        "comparison": {"split": "test", "ensemble": _key(ens), **versus},
        "method_by_validation": {
            "method": chosen,
            "is_the_spec_method": chosen == method,
            "validation_sharpe": splits["validation"]["methods"][chosen].get("sharpe"),
            "test_sharpe": splits["test"]["methods"][chosen].get("sharpe"),
        },
        "best_member_on_test": {
            "name": hindsight,
            "test_sharpe": test[hindsight].get("sharpe"),
            "note": "chosen on the test split: hindsight, for comparison only",
        },
    }
