"""What holding a fixed target costs: the old free-rebalancing model beside held units.

For each target position held over the test split of the default TrainingRun (BTCUSDT 1h
when ../shared is there), prints:

- the constant-weight model the simulator used before (the position reset to the same
  fraction of equity at every bar, for free), with the rebalancing it implied (notional as
  a multiple of starting equity) and what that trading would have cost;
- the simulator now (units held, weight drifting; default margin and borrow), with how the
  episode ended, beside an independent cash-and-units ledger (tests/support/ledger.py) run
  on the same bars with the same rules: the two must agree to 1e-9;
- the same with rebalance=always (the old model, now paying for its trades);
- a short sized once and held with no margin and no borrow, in the ledger (equity may go
  below zero there; the simulator ends the episode when equity is gone).

    python bench/position_accounting.py [--data URI]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "BTCUSDT_1h.csv"
BUNDLED = "pkg://gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv"
sys.path.insert(0, str(ROOT / "tests"))

from stevie_api.market import EnvSpec  # noqa: E402
from stevie_api.training import TrainingRunSpec  # noqa: E402
from stevie_trainer.env.market import MarketData  # noqa: E402
from stevie_trainer.env.prepare import data_splits, load_market  # noqa: E402
from stevie_trainer.evaluation.episode import Episode, run_policy  # noqa: E402
from support.ledger import Ledger  # noqa: E402

LEVELS = [-1.0, -0.5, 0.0, 0.5, 1.0]


class Hold:
    """Always the same target."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.name = f"hold {target:+g}"

    def act(self, obs: Any, accounts: Any) -> Any:
        return accounts.actions_for_targets(np.full(accounts.n, self.target))


def free_rebalancing(
    market: MarketData, first: int, last: int, p: float, k: float
) -> dict[str, float]:
    """The old model: weight p over every gap and every bar (so reset at each open and each
    close), costs only on the entry; and the trades those resets imply."""
    o, c = market.open, market.close
    equity, implied = 1.0, 0.0
    for t in range(first, last):
        if t > first:  # flat before the first fill
            gap = o[t + 1] / c[t] - 1.0
            equity *= 1.0 + p * gap
            implied += abs(p - p * (1 + gap) / (1 + p * gap)) * equity
        else:
            equity *= 1.0 - abs(p) * k
        bar = c[t + 1] / o[t + 1] - 1.0
        equity *= 1.0 + p * bar
        if t + 1 < last:
            implied += abs(p - p * (1 + bar) / (1 + p * bar)) * equity
    return {"equity": equity, "implied": implied, "cost": implied * k}


def ledger_run(
    market: MarketData, spec: EnvSpec, first: int, last: int, p: float
) -> tuple[np.ndarray, bool]:
    book = Ledger.of(spec, market.bars_per_year)
    high = market.high
    equity = [1.0]
    for t in range(first, last):
        equity.append(book.step(p, market.open[t + 1], high[t + 1], market.close[t + 1]))
        if book.closed_out:
            break
    return np.asarray(equity), book.closed_out


def ended(ep: Episode, steps: int) -> str:
    if len(ep.equity) - 1 < steps:
        return f"closed out at step {len(ep.equity) - 1}"
    return "held to the end"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED) if SHARED.is_file() else BUNDLED)
    args = parser.parse_args()
    run = TrainingRunSpec.model_validate({"data": {"uri": args.data}})
    base = run.env.model_copy(update={"positions": LEVELS})
    _, market = load_market(run.data, base)
    test = data_splits(market, run.data).test
    first, last = market.tradable(test, "test split")
    k = (base.fee_bps + base.slippage_bps) / 1e4
    print(
        f"{market.name} test split: {market.index[first]} .. {market.index[last]}, "
        f"{last - first} steps, price x{market.close[last] / market.close[first]:.3f}; "
        f"costs {k * 1e4:g} bps, borrow {base.borrow_bps:g} bps/year, maintenance margin "
        f"{base.maintenance_margin:g}\n"
    )
    header = (
        f"{'target':>6} | {'old: free rebalancing':>21} {'implied x eq':>12} {'its cost':>8} | "
        f"{'held units':>10} {'ledger':>8} {'how it ended':<24} | {'always rebal.':>13}"
    )
    print(header)
    print("-" * len(header))
    for p in (-1.0, -0.5, 0.5, 1.0):
        old = free_rebalancing(market, first, last, p, k)
        ep = run_policy(market, base, test, Hold(p))
        book, _ = ledger_run(market, base, first, last, p)
        assert np.allclose(ep.equity, book, rtol=0, atol=1e-9), "simulator and ledger disagree"
        always = base.model_copy(update={"rebalance": "always"})
        ep_always = run_policy(market, always, test, Hold(p))
        print(
            f"{p:>+6.1f} | {old['equity']:>21.4f} {old['implied']:>11.1f}x {old['cost']:>8.2%} | "
            f"{ep.equity[-1]:>10.4f} {book[-1]:>8.4f} {ended(ep, last - first):<24} | "
            f"{ep_always.equity[-1]:>13.4f}"
        )
    # A short sized once at the first fill and never closed out, whatever its equity.
    entry = market.open[first + 1]
    units = -(1.0 - k) / entry
    cash = 1.0 - units * entry - k  # the proceeds of the sale, less its cost
    never = cash + units * market.close[last]
    bare = base.model_copy(update={"maintenance_margin": 0.0, "borrow_bps": 0.0})
    steps = last - first
    print(
        f"\na -1 short sized once and never closed out would end at equity {never:+.3f}. "
        f"The simulator, with no margin and no borrow: "
        f"{ended(run_policy(market, bare, test, Hold(-1.0)), steps)} (equity gone); "
        f"with the default margin: {ended(run_policy(market, base, test, Hold(-1.0)), steps)}."
    )


if __name__ == "__main__":
    main()
