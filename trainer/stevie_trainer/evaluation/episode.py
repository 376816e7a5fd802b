"""Deterministic evaluation passes: run a policy over a split, then trades and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import EnvSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import (
    L_BAR,
    L_COST,
    L_GAP,
    L_NEW,
    L_OLD,
    L_TARGET,
    LEDGER_COLUMNS,
)
from stevie_trainer.env.market import Bounds, MarketData, sim_params
from stevie_trainer.evaluation.baselines import Policy
from stevie_trainer.evaluation.fastpolicy import GreedyMLP, run_episode
from stevie_trainer.evaluation.performance import Performance, performance
from stevie_trainer.evaluation.turnover import CostRates, Turnover, turnover

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Episode:
    """One evaluation pass of one account: equity per bar and the step ledger."""

    policy: str
    timestamps: pd.DatetimeIndex  # bar of each equity point (first = decision bar)
    equity: F64  # starts at 1.0
    ledger: F64  # [steps, LEDGER_COLUMNS] (see stevie_trainer.env.kernel)
    bars_per_year: float
    costs: CostRates | None = None  # the rates it ran with (None: turnover unknown)

    @property
    def positions(self) -> F64:
        """Weight of the position held over each step's bar (after its fill)."""
        return self.ledger[:, L_NEW]

    @property
    def targets(self) -> F64:
        """The target position held after each step (what the policy chose)."""
        return self.ledger[:, L_TARGET]

    @property
    def trade_returns(self) -> F64:
        return round_trips(self.ledger)

    def turnover(self) -> Turnover | None:
        """Orders, turnover and the costs paid (None if the rates are unknown)."""
        if self.costs is None:
            return None
        return turnover(self.equity, self.ledger, self.costs, bars_per_year=self.bars_per_year)

    def performance(self) -> Performance:
        return performance(
            self.equity,
            bars_per_year=self.bars_per_year,
            positions=self.positions,
            trade_returns=self.trade_returns,
            costs=self.turnover(),
        )


def round_trips(ledger: F64) -> F64:
    """Returns of round-trip trades, each a run of bars holding a position of one sign.

    Every equity multiplier is attributed to exactly one trade: the gap to the position held
    before the fill, the bar to the position after it, and the cost to the trade it opens,
    resizes or closes (a flip splits its cost between the closed and the opened trade in
    proportion to the amounts). So the trades' growth multiplies to the episode's equity
    growth; a trade still open at the end is marked to the last close.
    """
    trades: list[float] = []
    log_acc = 0.0
    open_sign = 0.0
    for p_old, p_new, gap, cost, bar in ledger[:, [L_OLD, L_NEW, L_GAP, L_COST, L_BAR]]:
        s_old, s_new = np.sign(p_old), np.sign(p_new)
        if s_old != 0:
            log_acc += np.log(gap)
        if s_old == s_new:
            log_acc += np.log(cost)
        else:
            traded = abs(p_old) + abs(p_new)
            log_cost = np.log(cost)
            if s_old != 0:
                log_acc += log_cost * abs(p_old) / traded
                trades.append(float(np.expm1(log_acc)))
                log_acc = 0.0
            if s_new != 0:
                log_acc = log_cost * abs(p_new) / traded
        if s_new != 0:
            log_acc += np.log(bar)
        open_sign = s_new
    if open_sign != 0:
        trades.append(float(np.expm1(log_acc)))
    return np.asarray(trades, dtype=np.float64)


def run_policy(
    market: MarketData,
    spec: EnvSpec,
    bounds: Bounds,
    policy: Policy,
    *,
    split_name: str = "data",
) -> Episode:
    """One deterministic pass of ``policy`` over ``bounds`` (decide at close, fill next open)."""
    first, last = market.tradable(bounds, split_name)
    acc = Accounts(1, sim_params(spec), market)
    acc.reset(np.zeros(1, dtype=np.int64), np.array([first]), np.array([last]))
    steps = last - first
    mlp = getattr(policy, "mlp", None)
    if isinstance(mlp, GreedyMLP):  # a trained MLP policy: the whole pass compiled
        equity, ledger, done_at = run_episode(mlp, acc, steps)
    else:
        equity, ledger, done_at = _python_episode(policy, acc, steps)
    return Episode(
        policy=policy.name,
        timestamps=market.index[first : first + done_at + 1],
        equity=equity[: done_at + 1],
        ledger=ledger[:done_at],
        bars_per_year=market.bars_per_year,
        costs=CostRates.of(spec, market.bars_per_year),
    )


def _python_episode(policy: Policy, acc: Accounts, steps: int) -> tuple[F64, F64, int]:
    """Step account 0 with ``policy.act`` until ``steps`` or termination (see run_episode)."""
    equity = np.empty(steps + 1)
    equity[0] = 1.0
    ledger = np.empty((steps, LEDGER_COLUMNS))
    done_at = steps
    for k in range(steps):
        acc.step(policy.act(acc.observe(), acc))
        ledger[k] = acc.ledger[0]
        equity[k + 1] = acc.equity[0]
        if acc.terminated[0]:
            done_at = k + 1
            break
    return equity, ledger, done_at
