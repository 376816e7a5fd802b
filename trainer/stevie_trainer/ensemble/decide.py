"""The ensemble at run time: members, method and weights, deciding at one bar.

The backtest and the decision service both decide through :meth:`Ensemble.decide`, from
the bars alone (plus the account state): the dynamic weights at bar t come from the
members' shadow votes on the bars before t, which the bars themselves give, so any replica
of the service answers a request the same way, and as the backtest would have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_trainer.ensemble.agent import FLAT, AccountState, Member, load_member
from stevie_trainer.ensemble.members import ResolvedMember
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

__all__ = ["Ensemble", "document", "from_document", "version_of"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Ensemble:
    """Members voting by ``method``, weighted statically or over ``reweight_window`` bars."""

    def __init__(
        self,
        members: Sequence[Member],
        method: Method,
        *,
        weight_metric: str = "validation.sharpe",
        reweight_window: int | None = None,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.method: Method = method
        self.reweight_window = reweight_window
        self.grid: F64 = grid_of([m.levels for m in members])
        self.static: F64 = static_weights(
            [m.resolved.metric(weight_metric) for m in members],
            [m.resolved.weight for m in members],
        )

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

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
    """A short hash of what decides: members (models, weights), method and window."""
    keep = {k: doc.get(k) for k in ("method", "weightMetric", "reweightWindow")}
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
) -> dict[str, Any]:
    """ensemble.json: everything the decision service loads (and nothing from a request)."""
    doc: dict[str, Any] = {
        "name": name,
        "method": method,
        "weightMetric": weight_metric,
        "reweightWindow": reweight_window,
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
    )
