"""Turnover and costs of one evaluation pass, from its step ledger (issue 13: cost-aware acting).

An agent that trades 225 round trips in a test split can lose tens of percent to costs
alone, so every report states what trading cost: the same code for the agent, the expert and
buy-and-hold. Everything comes from the ledger the kernel records
(:mod:`stevie_trainer.env.kernel`, columns ``L_*``) and the equity curve, plus the rates:

* **orders**: steps that traded (a fill or a close-out). Round trips are the Performance's
  ``trades`` (:func:`~stevie_trainer.evaluation.episode.round_trips`).
* **turnover**: the notional traded, buys and sells both counted, as a multiple of the mean
  equity over the pass (every equity point, the start included): buying a full position and
  selling it again is 2. ``annual_turnover`` scales it by ``bars_per_year / steps``.
* **costs**, as fractions of the initial equity, each paid when it was paid: ``fee_cost`` and
  ``slippage_cost`` on the notional traded (the kernel charges fee + slippage per unit of the
  notional an order is for), ``borrow_cost`` on the short notional per bar; ``total_cost``.
* **gross_return** = ``total_return + total_cost``: the P&L of the positions actually held
  (the units, marked to market), before the costs they paid. It is an identity of the
  cash-and-units account, not a what-if: without costs a policy would have held slightly
  more units later on, which this does not guess at.
* **cost_share** = ``total_cost / gross_return``: the share of the gross profit that costs
  took. Above 1, costs turned a gross profit into a net loss. When the gross return is <= 0
  (the positions lost money before costs) there is no profit for costs to take a share of:
  ``cost_share`` is nan (``None`` in JSON), and ``total_cost`` and ``gross_return`` say how
  much deeper the loss went.

How the costs are read back from the multipliers: over a step starting at equity ``E``, the
fill and any close-out pay ``(fee + slippage) x L_TRADED x E`` (L_TRADED is their notional
over E). A short's borrow is ``E x gap x cost x borrow x s (1 + r)`` with ``s (1 + r)`` its
notional at the bar's end over the equity after the fill; the bar multiplier is
``1 + s - s (1 + r)(1 + borrow + k)`` with k = fee + slippage if the short was liquidated in
the bar (then the target is 0 while the weight held was short), else 0, which gives
``s (1 + r)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stevie_api.market import EnvSpec
from stevie_trainer.env.kernel import (
    L_BAR,
    L_COST,
    L_GAP,
    L_NEW,
    L_TARGET,
    L_TRADED,
    LEDGER_COLUMNS,
)

__all__ = ["CostRates", "Turnover", "turnover"]

F64 = npt.NDArray[np.float64]
NAN = float("nan")


@dataclass(frozen=True)
class CostRates:
    """The cost rates a pass was run with, per unit of notional (borrow: per bar)."""

    fee: float
    slippage: float
    borrow_per_bar: float

    @classmethod
    def of(cls, spec: EnvSpec, bars_per_year: float) -> CostRates:
        """The rates of ``spec`` (basis points) as the kernel applies them."""
        return cls(
            fee=spec.fee_bps / 1e4,
            slippage=spec.slippage_bps / 1e4,
            borrow_per_bar=spec.borrow_bps / 1e4 / bars_per_year,
        )

    @property
    def trade(self) -> float:
        """Fee + slippage per unit of notional traded (the kernel's ``cost_rate``)."""
        return self.fee + self.slippage


@dataclass(frozen=True)
class Turnover:
    """What one pass traded and paid (see the module docstring for the definitions)."""

    orders: int
    turnover: float
    annual_turnover: float
    fee_cost: float
    slippage_cost: float
    borrow_cost: float
    total_cost: float
    gross_return: float
    cost_share: float


def _borrow_paid(ledger: F64, start_equity: F64, rates: CostRates) -> F64:
    """Borrow paid at each step, in equity units (0 where nothing was short)."""
    short = np.maximum(-ledger[:, L_NEW], 0.0)
    liquidated = (ledger[:, L_NEW] < 0.0) & (ledger[:, L_TARGET] == 0.0)
    denominator = 1.0 + rates.borrow_per_bar + np.where(liquidated, rates.trade, 0.0)
    notional = np.where(short > 0.0, (1.0 + short - ledger[:, L_BAR]) / denominator, 0.0)
    after_fill = start_equity * ledger[:, L_GAP] * ledger[:, L_COST]
    return np.asarray(after_fill * rates.borrow_per_bar * notional, dtype=np.float64)


def turnover(
    equity: npt.ArrayLike, ledger: npt.ArrayLike, rates: CostRates, *, bars_per_year: float
) -> Turnover:
    """Turnover and costs of a pass: ``equity`` has one point per step plus the start, and
    ``ledger`` one row per step (an :class:`~stevie_trainer.evaluation.episode.Episode`'s)."""
    eq = np.asarray(equity, dtype=np.float64)
    book = np.asarray(ledger, dtype=np.float64).reshape(-1, LEDGER_COLUMNS)
    steps = book.shape[0]
    if eq.ndim != 1 or eq.size != steps + 1:
        raise ValueError(
            f"turnover needs {steps + 1} equity points for {steps} steps, got {eq.shape}"
        )
    if not eq[0] > 0:
        raise ValueError(f"turnover needs a positive starting equity, got {eq[0]}")
    notional = book[:, L_TRADED] * eq[:-1]
    traded = float(notional.sum())
    fees = traded * rates.fee / eq[0]
    slippage = traded * rates.slippage / eq[0]
    borrow = float(_borrow_paid(book, eq[:-1], rates).sum()) / eq[0]
    total = fees + slippage + borrow
    gross = float(eq[-1] / eq[0] - 1.0) + total
    mult = traded / float(eq.mean())
    return Turnover(
        orders=int(np.count_nonzero(book[:, L_TRADED] > 0.0)),
        turnover=mult,
        annual_turnover=mult * bars_per_year / steps if steps else NAN,
        fee_cost=fees,
        slippage_cost=slippage,
        borrow_cost=borrow,
        total_cost=total,
        gross_return=gross,
        cost_share=total / gross if gross > 0 and math.isfinite(gross) else NAN,
    )
