"""An account as a broker books it, in plain Python, written independently of the simulator.

The ledger knows nothing of weights or equity multipliers: it holds cash and units, marks
them at prices, pays the fee on the notional of each order, charges borrow on the short
notional at each close, and closes a short out where its equity meets the maintenance
margin. The simulator's tests (and bench/position_accounting.py) hold the kernel to it.

The trader's own rules are the broker's order checks here: an order smaller than the no-trade
band is refused (unless the account is flat), and for ``min_hold`` steps after the target
changed any new target is refused. ``traded`` is the notional of the last step's orders over
the equity the step started with: what the turnover penalty is charged on.
"""

from __future__ import annotations

from dataclasses import dataclass

from stevie_api.market import EnvSpec

__all__ = ["Ledger"]


@dataclass
class Ledger:
    """One account as a broker books it: cash, units, and the target the trader last set."""

    cost: float  # fee + slippage per unit of notional
    borrow_per_bar: float  # on short notional, at each close
    margin: float  # maintenance: equity >= margin x short notional
    rebalance: str = "never"
    drift: float = 0.05
    band: float = 0.0  # orders for less than band x equity are refused, unless flat
    min_hold: int = 0  # steps after a target change in which no other target is accepted
    cash: float = 1.0
    units: float = 0.0
    target: float = 0.0
    closed_out: bool = False
    hold_left: int = 0
    traded: float = 0.0  # notional ordered in the last step / equity at its start
    start_equity: float = 1.0

    @classmethod
    def of(cls, spec: EnvSpec, bars_per_year: float) -> Ledger:
        """A fresh account under ``spec``'s costs, borrow, margin and rebalance rule."""
        return cls(
            cost=(spec.fee_bps + spec.slippage_bps) / 1e4,
            borrow_per_bar=spec.borrow_bps / 1e4 / bars_per_year,
            margin=spec.maintenance_margin,
            rebalance=spec.rebalance,
            drift=spec.rebalance_drift,
            band=spec.no_trade_band,
            min_hold=spec.min_hold_bars,
        )

    def equity(self, price: float) -> float:
        return self.cash + self.units * price

    def _order(self, units: float, price: float) -> None:
        """Buy ``units`` (sell if negative) at ``price``; the fee is paid from cash."""
        self.cash -= units * price + self.cost * abs(units) * price
        self.units += units
        self.traded += abs(units) * price / self.start_equity

    def _close_out(self, price: float) -> None:
        self._order(-self.units, price)
        self.closed_out, self.target = True, 0.0

    def _wants_trade(self, target: float, weight: float) -> bool:
        if self.target != 0.0 and abs(target - weight) < self.band:
            return False  # too small to be worth its cost (an entry from flat is exempt)
        if target != self.target:
            return True
        if self.rebalance == "always":
            return weight != target
        return self.rebalance == "drift" and abs(weight - target) > self.drift

    def step(self, target: float, open_: float, high: float, close: float) -> float:
        """Decide ``target`` at the last close; fill at ``open_``; equity at ``close``."""
        before = self.target
        equity = self._step(self.target if self.hold_left > 0 else target, open_, high, close)
        self.hold_left = self.min_hold if self.target != before else max(self.hold_left - 1, 0)
        self.start_equity = equity
        return equity

    def _step(self, target: float, open_: float, high: float, close: float) -> float:
        self.traded = 0.0
        equity = self.equity(open_)
        short_notional = -self.units * open_
        if equity <= 0.0:
            self.closed_out = True
            return equity
        if short_notional > 0.0 and equity <= self.margin * short_notional:
            self._close_out(open_)  # the gap went past the margin: out at the open
            return self.cash
        weight = self.units * open_ / equity
        if self._wants_trade(target, weight):
            # Size the order so that after its fee the position is ``target`` of equity:
            # fee = cost x |target x equity - value held| (the notional the order is for).
            notional = abs(target * equity - self.units * open_)
            fee = self.cost * notional
            new_units = target * (equity - fee) / open_
            self.cash -= (new_units - self.units) * open_ + fee
            self.traded += notional / self.start_equity
            self.units, self.target = new_units, target
        if self.units < 0.0:
            # Equity meets the margin where cash + units x P = margin x (-units) x P.
            liquidation = self.cash / (-self.units * (1.0 + self.margin))
            if high >= liquidation:
                self.cash -= self.borrow_per_bar * -self.units * liquidation
                self._close_out(liquidation)
                return self.cash
            self.cash -= self.borrow_per_bar * -self.units * close
        return self.equity(close)
