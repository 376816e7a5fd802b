"""The service's acting rules (serving.rules.act) are the simulator's: the kernel and act()
step through the same targets from the same weights, and agree on the target held, on
whether an order is placed and on the hold's clock, step after step, for every rule and
rebalance mode, on synthetic and real bars. Shorts allowed, and no hold but the rule's own
(support.mechanics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_api.market import EnvSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import L_NEW
from stevie_trainer.env.market import MarketData, sim_params
from stevie_trainer.serving.rules import ActingRules, act, reason
from support.bars import bars, switching
from support.data import BUNDLED_DAILY
from support.mechanics import mechanics_spec

LEVELS = [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
RULES: dict[str, dict[str, Any]] = {
    "off": {},
    "band": {"no_trade_band": 0.3},
    "hold": {"min_hold_bars": 4},
    "both": {"no_trade_band": 0.3, "min_hold_bars": 4},
}
REBALANCE: dict[str, dict[str, Any]] = {
    "never": {"rebalance": "never"},
    "always": {"rebalance": "always"},
    "drift": {"rebalance": "drift", "rebalance_drift": 0.02},
}


def lockstep(frame: pd.DataFrame, spec: EnvSpec, n: int = 16, seed: int = 0) -> dict[str, int]:
    """Step ``n`` accounts of the simulator with targets switching every ~3 bars; before
    each step, act() on the same target from the weight the fill sees (after the gap);
    after it, the kernel must have done what act() said. Returns what the rules did."""
    market = MarketData.from_frame(frame, spec)
    acc = Accounts(n, sim_params(spec), market)
    first, steps = market.first_obs, min(400, market.n_bars - market.first_obs - 2)
    acc.reset(np.arange(n), np.full(n, first), np.full(n, first + steps + 1))
    rules = ActingRules.of(spec)
    wishes = np.array([switching(steps, LEVELS, seed=seed + i, hold=3) for i in range(n)])
    since: list[int | None] = [None] * n  # bars since each account's target changed
    seen = {"held": 0, "banded": 0, "trades": 0, "kept": 0}
    for k in range(steps):
        t = acc.t.copy()
        gap = acc.open[t + 1] / acc.close[t] - 1.0
        w_open = acc.weight * (1.0 + gap) / (1.0 + acc.weight * gap)
        before = acc.pos.copy()
        want = [act(before[i], w_open[i], wishes[i, k], since[i], rules) for i in range(n)]
        acc.step(acc.actions_for_targets(wishes[:, k]))
        for i, acted in enumerate(want):
            assert not acc.terminated[i], "a close-out would end the comparison"
            where = f"account {i}, step {k}"
            assert acc.pos[i] == acted.target, where
            assert (acc.ledger[i, L_NEW] != w_open[i]) == acted.trade, where
            assert acc.hold[i] == acted.hold_left, where
            last = since[i]
            since[i] = 0 if acc.pos[i] != before[i] else (None if last is None else last + 1)
            seen["held"] += acted.held and wishes[i, k] != before[i]
            seen["banded"] += acted.banded
            seen["trades"] += acted.trade
            seen["kept"] += acted.target != wishes[i, k]
    return seen


@pytest.mark.parametrize("rebalance", list(REBALANCE))
@pytest.mark.parametrize("rule", list(RULES))
def test_act_is_the_kernel_on_synthetic_bars(rule: str, rebalance: str) -> None:
    spec = mechanics_spec(positions=LEVELS, **REBALANCE[rebalance], **RULES[rule])
    seen = lockstep(bars(600, seed=3), spec)
    assert seen["trades"] > 100
    # Each rule bites where it is on (so the comparison covers it), and only there.
    assert (seen["held"] > 0) == ("min_hold_bars" in RULES[rule])
    assert (seen["banded"] > 0) == ("no_trade_band" in RULES[rule])
    assert (seen["kept"] > 0) == (rule != "off")


@pytest.mark.parametrize("rebalance", ["never", "drift"])
def test_act_is_the_kernel_on_real_bars(rebalance: str) -> None:
    frame = load_ohlcv(BUNDLED_DAILY)
    spec = mechanics_spec(positions=LEVELS, **REBALANCE[rebalance], **RULES["both"])
    seen = lockstep(frame, spec, seed=11)
    assert seen["held"] > 0 and seen["banded"] > 0


def test_what_each_rule_promises() -> None:
    rules = ActingRules(no_trade_band=0.3, min_hold_bars=2)
    # An entry from flat is always placed, however small.
    assert act(0.0, 0.0, 0.25, None, rules).trade
    # A resize inside the band is not placed: the target stays.
    small = act(0.5, 0.52, 0.25, None, rules)
    assert (small.target, small.trade, small.banded) == (0.5, False, True)
    # A change at the last bar: the next 2 decisions keep the target, the third is free.
    assert [act(1.0, 1.0, -1.0, s, rules).target for s in (0, 1, 2)] == [1.0, 1.0, -1.0]
    assert [act(1.0, 1.0, 1.0, s, rules).hold_left for s in (0, 1, 2)] == [1, 0, 0]
    assert act(1.0, 1.0, -1.0, 2, rules).hold_left == 2  # the change restarts it
    # Unknown bars since the change: no hold running, and the reason says it was not checked.
    free = act(1.0, 1.0, -1.0, None, rules)
    assert free.target == -1.0 and not free.held
    note = reason(free, -1.0, 1.0, None, rules)
    assert note is not None and "not checked" in note and "barsSinceTargetChange" in note
    assert reason(act(1.0, 1.0, -1.0, 2, rules), -1.0, 1.0, 2, rules) is None
    held = act(1.0, 1.0, -1.0, 0, rules)
    assert "held" in (reason(held, -1.0, 1.0, 0, rules) or "")
    assert "noTradeBand 0.3" in (reason(small, 0.25, 0.5, None, rules) or "")
