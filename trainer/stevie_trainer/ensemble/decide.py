"""The ensemble at run time: members, method and weights, deciding at one bar.

The backtest and the decision service both decide through :meth:`Ensemble.decide`, from
the bars alone (plus the account state): the dynamic weights at bar t come from the
members' shadow votes on the bars before t, which the bars themselves give, so any replica
of the service answers a request the same way, and as the backtest would have.

The ensemble's trades follow one no-trade band and one minimum hold (:attr:`Ensemble.env`):
the spec's, else the members' own, which must then agree. They are rules of the action
scheme an agent learns to act under, not costs: the first member's (how costs are shared)
would make the ensemble act under rules some members never met, silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import EnvSpec
from stevie_trainer.ensemble.agent import FLAT, AccountState, Member, load_member
from stevie_trainer.ensemble.members import MemberError, ResolvedMember
from stevie_trainer.ensemble.voting import (
    Decision,
    Method,
    combine,
    dynamic_weights,
    flat_votes,
    grid_of,
    on_grid,
    shadow_returns,
    static_weights,
)
from stevie_trainer.env.market import MarketData

__all__ = ["ACTING_RULES", "Ensemble", "acting_rule", "document", "from_document", "version_of"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
# The EnvSpec fields the ensemble's trades follow as one value, with their spec names.
ACTING_RULES = {"no_trade_band": "noTradeBand", "min_hold_bars": "minHoldBars"}


def acting_rule(members: Sequence[Member], field: str, given: float | None) -> float:
    """The ensemble's value of an acting rule (``ACTING_RULES``): ``given`` (the Ensemble
    spec's), else the members' common value; members trained under different values are
    a :class:`MemberError` naming the first that differs from the first member."""
    if given is not None:
        return given
    values = [getattr(m.env, field) for m in members]
    odd = next((m for m, v in zip(members, values, strict=True) if v != values[0]), None)
    if odd is None:
        return float(values[0])
    name = ACTING_RULES[field]
    each = ", ".join(f"{m.name} {v:g}" for m, v in zip(members, values, strict=True))
    raise MemberError(
        odd.name,
        f"trained with {name} {getattr(odd.env, field):g}, unlike {members[0].name!r} "
        f"({each}): an ensemble trades one account under one {name}; set the Ensemble's "
        f"spec.{name}",
    )


class Ensemble:
    """Members voting by ``method``, weighted statically or over ``reweight_window`` bars."""

    def __init__(
        self,
        members: Sequence[Member],
        method: Method,
        *,
        weight_metric: str = "validation.sharpe",
        reweight_window: int | None = None,
        no_trade_band: float | None = None,
        min_hold_bars: int | None = None,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.method: Method = method
        self.reweight_window = reweight_window
        self.no_trade_band = acting_rule(self.members, "no_trade_band", no_trade_band)
        self.min_hold_bars = int(acting_rule(self.members, "min_hold_bars", min_hold_bars))
        self.grid: F64 = grid_of([m.levels for m in members])
        self.static: F64 = static_weights(
            [m.resolved.metric(weight_metric) for m in members],
            [m.resolved.weight for m in members],
        )

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def env(self) -> EnvSpec:
        """The ensemble's simulator: the first member's costs and rebalancing (which every
        run of its backtest pays), trading the grid of levels, under the ensemble's own
        no-trade band and minimum hold."""
        grid = [float(x) for x in self.grid]
        return self.members[0].env.model_copy(
            update={
                "positions": grid,
                "allow_short": min(grid) < 0.0,
                "action_scheme": "target",
                "no_trade_band": self.no_trade_band,
                "min_hold_bars": self.min_hold_bars,
            }
        )

    @property
    def warm_up(self) -> int:
        """Bars of history the first decision needs (the widest member's)."""
        return max(m.warm_up for m in self.members)

    @property
    def bars_needed(self) -> int:
        """Bars a request must carry: the warm-up, the decision bar, and for a reweight
        window W the W bars before it plus the one whose vote earns the first of them."""
        return self.warm_up + 1 + (self.reweight_window + 1 if self.reweight_window else 0)

    def markets(self, frame: pd.DataFrame, bars_per_year: float | None = None) -> list[MarketData]:
        """The bars as each member sees them (members with the same view share one)."""
        seen: dict[str, MarketData] = {}
        out = []
        for m in self.members:
            key = m.env.model_dump_json(
                include={
                    "window",
                    "features",
                    "rsi_period",
                    "ma_fast",
                    "ma_slow",
                    "volatility_window",
                }
            )
            if key not in seen:
                seen[key] = m.market(frame, bars_per_year)
            out.append(seen[key])
        return out

    def shadow_votes(self, markets: Sequence[MarketData], bars: I64) -> F64:
        """Each member's own vote (a level) at ``bars``, seen from a flat account: [M, len]."""
        bars = np.asarray(bars, dtype=np.int64)
        votes = np.zeros((len(self.members), len(bars)))
        for i, (member, market) in enumerate(zip(self.members, markets, strict=True)):
            ok = bars >= market.first_obs
            if not ok.any():
                continue
            probs = member.probabilities(member.observations(market, bars[ok], FLAT))
            votes[i, np.flatnonzero(ok)] = member.levels[flat_votes(probs, member.levels)]
        return votes

    def weight_path(self, markets: Sequence[MarketData], close: F64, bars: I64) -> F64:
        """The weights at each decision bar of ``bars`` ([len, M]); static without a window."""
        bars = np.asarray(bars, dtype=np.int64)
        if not self.reweight_window:
            return np.broadcast_to(self.static, (len(bars), len(self.members))).copy()
        lo = max(int(bars.min()) - self.reweight_window - 1, 0)
        span = np.arange(lo, int(bars.max()) + 1, dtype=np.int64)
        returns = shadow_returns(self.shadow_votes(markets, span), close[span])
        return np.stack(
            [dynamic_weights(returns, int(t) - lo, self.reweight_window, self.static) for t in bars]
        )

    def decide(
        self,
        markets: Sequence[MarketData],
        t: int,
        weights: F64,
        account: AccountState = FLAT,
    ) -> Decision:
        """The decision at bar ``t`` (after its close) for ``account``."""
        probs = np.stack(
            [
                on_grid(
                    m.probabilities(m.observations(mk, np.array([t]), account))[0],
                    m.levels,
                    self.grid,
                )
                for m, mk in zip(self.members, markets, strict=True)
            ]
        )
        return combine(probs, weights, self.grid, self.method, current=account.position)


def version_of(doc: dict[str, Any]) -> str:
    """A short hash of what decides: members (models, weights), method, window and the
    acting rules when the spec sets them (unset, a document's version is what it was)."""
    keep = {k: doc.get(k) for k in ("method", "weightMetric", "reweightWindow")}
    keep |= {k: doc[k] for k in ACTING_RULES.values() if doc.get(k) is not None}
    keep["members"] = [
        {k: m.get(k) for k in ("name", "model_uri", "weight", "validation")}
        for m in doc.get("members", [])
    ]
    text = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def document(
    name: str,
    members: Sequence[ResolvedMember],
    method: Method,
    *,
    weight_metric: str = "validation.sharpe",
    reweight_window: int | None = None,
    no_trade_band: float | None = None,
    min_hold_bars: int | None = None,
) -> dict[str, Any]:
    """ensemble.json: everything the decision service loads (and nothing from a request).
    ``no_trade_band``/``min_hold_bars``: the spec's (None: the members' own)."""
    doc: dict[str, Any] = {
        "name": name,
        "method": method,
        "weightMetric": weight_metric,
        "reweightWindow": reweight_window,
        "noTradeBand": no_trade_band,
        "minHoldBars": min_hold_bars,
        "members": [m.to_dict() for m in members],
    }
    doc["version"] = version_of(doc)
    return doc


def from_document(doc: dict[str, Any]) -> Ensemble:
    """Load the ensemble ensemble.json describes (its members' models from their folders)."""
    members = [load_member(ResolvedMember.from_dict(m)) for m in doc["members"]]
    return Ensemble(
        members,
        doc["method"],
        weight_metric=doc.get("weightMetric", "validation.sharpe"),
        reweight_window=doc.get("reweightWindow"),
        no_trade_band=doc.get("noTradeBand"),
        min_hold_bars=doc.get("minHoldBars"),
    )
