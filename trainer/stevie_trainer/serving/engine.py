"""The decision at the last bar of a request, as the backtest takes it, and what was decided.

Per request: the members' features from the bars (one computation per distinct feature set
and lookbacks, shared by members that differ only in their window), the dynamic weights at
the last bar from the members' shadow votes on the bars before it, then
:meth:`Ensemble.decide`. The answer depends only on the request's bars and account, so any
replica gives the same one (nothing is cached between requests).

Against the core's own path (``Ensemble.markets`` -> ``weight_path`` -> ``decide``) two
one thing is faster and equal: features come from :mod:`.features` (bit-identical to
``compute_features``, checked at load; the engine uses ``compute_features`` if the check
fails). The weights and the decision are the core's own (``weight_path``, ``decide``).
The members' forward passes are the core's own calls, in the same batch shapes,
so probabilities are the same floats; ``decide`` is ``Ensemble.decide`` itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from stevie_trainer.data.features import FeatureSet, IndicatorParams, compute_features
from stevie_trainer.ensemble.agent import AccountState, Member
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.ensemble.voting import Decision
from stevie_trainer.env.market import MarketData, indicator_params
from stevie_trainer.serving import features as fast
from stevie_trainer.serving.bars import BarError, Bars
from stevie_trainer.serving.rules import Acted

__all__ = ["Engine", "Stats"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
FeatureKey = tuple[tuple[str, ...], IndicatorParams]


class Engine:
    """An ensemble deciding on request bars (load it once; decide from any thread)."""

    def __init__(self, ensemble: Ensemble, *, use_fast: bool = True) -> None:
        self.ensemble = ensemble
        self.members: list[Member] = list(ensemble.members)
        self.keys: list[FeatureKey] = [
            (tuple(m.env.features), indicator_params(m.env)) for m in self.members
        ]
        self.fast: dict[FeatureKey, bool] = {}
        self.problems: list[str] = []
        for key in dict.fromkeys(self.keys):
            problem = fast.self_check(*key) if use_fast else "fast features disabled"
            self.fast[key] = problem is None
            if problem is not None:
                self.problems.append(problem)

    @property
    def needs_volume(self) -> bool:
        return any("volume_zscore" in names for names, _ in self.keys)

    @property
    def bars_needed(self) -> int:
        """Bars a request must carry (see ``Ensemble.bars_needed``: with a reweight window
        W, a member's first shadow return needs the vote of bar t - W - 1)."""
        return self.ensemble.bars_needed

    @property
    def features_mode(self) -> str:
        return "fast" if all(self.fast.values()) else "reference"

    def _features(self, bars: Bars, key: FeatureKey) -> FeatureSet:
        if self.fast[key]:
            return fast.fast_features(bars.close, bars.volume, *key)
        return compute_features(bars.frame(), *key)

    def markets(self, bars: Bars) -> list[MarketData]:
        """Each member's view of the bars (what ``Ensemble.markets`` gives, without the bar
        size and bars per year, which no decision reads)."""
        index = bars.index()
        sets: dict[FeatureKey, tuple[FeatureSet, F32]] = {}
        views: dict[tuple[FeatureKey, int], MarketData] = {}
        out = []
        for member, key in zip(self.members, self.keys, strict=True):
            if key not in sets:
                try:
                    feats = self._features(bars, key)
                except ValueError as err:  # a gap after the warm-up: extreme prices
                    raise BarError(
                        f"the bars' features are unusable: {err}", code="features_undefined"
                    ) from None
                sets[key] = feats, np.nan_to_num(feats.values, nan=0.0)
            feats, observed = sets[key]
            view = (key, member.window)
            if view not in views:
                views[view] = MarketData(
                    name=member.name,
                    index=index,
                    open=bars.open,
                    high=bars.high,
                    close=bars.close,
                    features=feats,
                    observed=observed,
                    first_obs=feats.first_valid + member.window - 1,
                    window=member.window,
                    bars_per_year=float("nan"),
                    bar_size="",
                )
            out.append(views[view])
        return out

    def weights(self, markets: list[MarketData], close: F64, t: int) -> F64:
        """The weights at bar ``t``: the backtest's (``Ensemble.weight_path``)."""
        path = self.ensemble.weight_path(markets, close, np.array([t], dtype=np.int64))
        return np.asarray(path[0], dtype=np.float64)

    def decide(self, bars: Bars, account: AccountState) -> Decision:
        """The decision after the close of the last bar (``bars`` checked beforehand)."""
        markets = self.markets(bars)
        t = len(bars) - 1
        for member, market in zip(self.members, markets, strict=True):
            if market.first_obs > t:  # inf/NaN features (prices overflowing) delay it
                raise BarError(
                    f"member {member.name!r} cannot observe the last bar: its features are "
                    f"first defined {market.first_obs - t} bar(s) later (extreme prices?)",
                    code="features_undefined",
                )
        with np.errstate(all="ignore"):  # overflowing prices: numbers, not warnings
            weights = self.weights(markets, bars.close, t)
            return self.ensemble.decide(markets, t, weights, account)


@dataclass
class _MemberTally:
    agreed: int = 0
    weight: float = 0.0


@dataclass
class Stats:
    """Running totals of one replica's decisions (memory: members + levels, not requests):
    actions are the targets answered (after the rules), agreement is with the vote."""

    names: list[str]
    since: float = field(default_factory=time.time)
    decisions: int = 0
    actions: dict[float, int] = field(default_factory=dict)
    held: int = 0
    banded: int = 0
    consensus: float = 0.0
    confidence: float = 0.0
    members: list[_MemberTally] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.members = [_MemberTally() for _ in self.names]

    def add(self, decision: Decision, acted: Acted) -> None:
        with self._lock:
            self.decisions += 1
            self.actions[acted.target] = self.actions.get(acted.target, 0) + 1
            self.held += acted.held
            self.banded += acted.banded
            self.consensus += decision.consensus
            self.confidence += decision.confidence
            for tally, vote, weight in zip(
                self.members, decision.votes, decision.weights, strict=True
            ):
                tally.agreed += vote == decision.level
                tally.weight += weight

    def snapshot(self) -> dict[str, Any]:
        """The totals as ``GET /v1/stats`` shows them."""
        with self._lock:
            n = self.decisions
            return {
                "since": datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds"),
                "decisions": n,
                "actions": {f"{level:g}": c for level, c in sorted(self.actions.items())},
                "held": self.held,
                "banded": self.banded,
                "mean_consensus": self.consensus / n if n else None,
                "mean_confidence": self.confidence / n if n else None,
                "members": [
                    {
                        "name": name,
                        "agreement": t.agreed / n if n else 0.0,
                        "contribution": t.weight / n if n else 0.0,
                    }
                    for name, t in zip(self.names, self.members, strict=True)
                ],
            }
