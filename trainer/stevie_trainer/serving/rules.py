"""The acting rules of the ensemble's simulator, applied to one live decision.

The simulator (stevie_trainer.env.kernel, ``_move`` and the HOLD clock of ``_step_kernel``)
applies the minimum hold and the no-trade band inside its numba step, beside the fill and
the bar's accounting: there is no small function of it to call. :func:`act` is the same
rule for one account and one decision, and tests/trainer_tests/serving/test_rules.py steps
the simulator and this function through the same targets and weights, so the two cannot
drift apart:

* the hold: while it runs, the decision keeps the current target. It runs for the
  ``min_hold_bars`` decisions after one that changed the target: with ``s`` bars since that
  change (0: it changed at the last bar), while ``s < min_hold_bars`` (the kernel's HOLD
  clock is ``max(min_hold_bars - s, 0)``). Unknown ``s`` (None): no hold running, as at the
  start of an episode.
* the band: an order -- to the new target, or a rebalancing trade back to the held one --
  with ``|target - weight| < no_trade_band`` is not placed and the target stays; a flat
  account (target 0) is exempt, so an entry is always placed.
* rebalancing: the target unchanged, an order only when ``|target - weight|`` is over the
  rebalance threshold (never: infinite; always: 0; drift: rebalanceDrift).

A margin close-out is the broker's: the account then reports a flat position with 0 bars
since the change (the simulator restarts the hold after a close-out too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stevie_api.market import EnvSpec

__all__ = ["Acted", "ActingRules", "act", "reason"]


@dataclass(frozen=True)
class ActingRules:
    """The rules a decision is acted on under (an EnvSpec's, in the kernel's numbers)."""

    no_trade_band: float = 0.0
    min_hold_bars: int = 0
    rebalance_threshold: float = math.inf

    @classmethod
    def of(cls, env: EnvSpec) -> ActingRules:
        from stevie_trainer.env.market import sim_params  # numba: in the loader, not at import

        p = sim_params(env)
        return cls(float(p.no_trade_band), int(p.min_hold_bars), float(p.rebalance_threshold))


@dataclass(frozen=True)
class Acted:
    """What one decision does to the account."""

    target: float  # the target held after the decision
    trade: bool  # an order is placed: the weight goes to ``target``
    held: bool  # the hold was running: the decision could not change the target
    banded: bool  # the band dropped an order (a new target or a rebalancing trade)
    hold_left: int  # the decisions after this one that cannot change the target
    size: float  # |requested target - weight|: the order the band judged


def act(
    position: float,
    weight: float,
    proposed: float,
    bars_since_change: int | None,
    rules: ActingRules,
) -> Acted:
    """Act on ``proposed`` (the decided target) from the account holding target
    ``position`` at ``weight`` (the kernel's weight at the fill's open), ``bars_since_change``
    bars after its target last changed (None: unknown, no hold running)."""
    clock = 0 if bars_since_change is None else max(rules.min_hold_bars - bars_since_change, 0)
    holding = clock > 0
    requested = position if holding else proposed
    size = abs(requested - weight)
    small = position != 0.0 and size < rules.no_trade_band
    unchanged_in_drift = requested == position and size <= rules.rebalance_threshold
    target = position if small else requested
    return Acted(
        target=target,
        trade=not (small or unchanged_in_drift),
        held=holding,
        banded=small and not unchanged_in_drift,
        hold_left=rules.min_hold_bars if target != position else max(clock - 1, 0),
        size=size,
    )


def reason(
    acted: Acted, proposed: float, position: float, bars_since_change: int | None,
    rules: ActingRules,
) -> str | None:  # fmt: skip
    """One line on what the rules did to ``proposed`` (None: nothing)."""
    parts = []
    if acted.held and proposed != position:
        parts.append(
            f"held: the target changed {bars_since_change} bar(s) ago and minHoldBars is "
            f"{rules.min_hold_bars}, so it stays {position:g} (the vote was {proposed:g})"
        )
    if acted.banded:
        order = "a rebalancing trade" if acted.held or proposed == position else "the order"
        parts.append(
            f"not traded: {order} of {acted.size:.4g} of equity is inside noTradeBand "
            f"{rules.no_trade_band:g}, so the target stays {position:g}"
        )
    if rules.min_hold_bars > 0 and bars_since_change is None:
        parts.append(
            f"minHoldBars {rules.min_hold_bars} not checked: the account gives no "
            "barsSinceTargetChange"
        )
    return "; ".join(parts) or None
