"""A price series prepared for simulation: features, observation rows, episode ranges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import EnvSpec
from stevie_trainer.data.features import FeatureSet, IndicatorParams, Indicators, compute_features
from stevie_trainer.data.ohlcv import require_bars
from stevie_trainer.data.splits import bars_per_year, infer_bar_size
from stevie_trainer.env.kernel import REWARDS, SCHEME_TARGET, SCHEMES, SimParams

Bounds = tuple[int, int]
I64 = npt.NDArray[np.int64]


def indicator_params(spec: EnvSpec) -> IndicatorParams:
    return IndicatorParams(
        rsi_period=spec.rsi_period,
        ma_fast=spec.ma_fast,
        ma_slow=spec.ma_slow,
        volatility_window=spec.volatility_window,
    )


def sim_params(spec: EnvSpec) -> SimParams:
    """Translate the EnvSpec into the kernel's numbers (allowShort=false drops short levels)."""
    scheme = SCHEMES[spec.action_scheme]
    levels = np.asarray(spec.positions, dtype=np.float64)
    if not spec.allow_short:
        levels = levels[levels >= 0.0]
    return SimParams(
        scheme=scheme,
        levels=levels if scheme == SCHEME_TARGET else np.zeros(3),
        trade_size=spec.trade_size,
        min_position=-spec.max_position if spec.allow_short else 0.0,
        max_position=spec.max_position,
        cost_rate=(spec.fee_bps + spec.slippage_bps) / 1e4,
        reward=REWARDS[spec.reward],
        reward_scale=spec.reward_scale,
        drawdown_penalty=spec.drawdown_penalty,
        sharpe_eta=spec.sharpe_eta,
        window=spec.window,
        rebalance_threshold={"never": np.inf, "always": 0.0}.get(
            spec.rebalance, spec.rebalance_drift
        ),
        borrow_rate=spec.borrow_bps / 1e4,
        maintenance_margin=spec.maintenance_margin,
        no_trade_band=spec.no_trade_band,
        min_hold_bars=spec.min_hold_bars,
        turnover_penalty=spec.turnover_penalty,
    )


@dataclass(frozen=True)
class MarketData:
    """Everything the environments need from one OHLCV frame under one EnvSpec."""

    name: str
    index: pd.DatetimeIndex
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    features: FeatureSet
    observed: npt.NDArray[np.float32]  # [T, F] features with the warm-up zeroed (never observed)
    first_obs: int  # first bar whose whole observation window is defined
    window: int
    bars_per_year: float
    bar_size: str

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        spec: EnvSpec,
        *,
        name: str = "data",
        bars_per_year_override: float | None = None,
    ) -> MarketData:
        feats = compute_features(frame, spec.features, indicator_params(spec))
        index = pd.DatetimeIndex(frame.index)
        return cls(
            name=name,
            index=index,
            open=frame["open"].to_numpy(dtype=np.float64),
            high=frame["high"].to_numpy(dtype=np.float64),
            close=frame["close"].to_numpy(dtype=np.float64),
            features=feats,
            observed=np.nan_to_num(feats.values, nan=0.0),
            first_obs=feats.first_valid + spec.window - 1,
            window=spec.window,
            bars_per_year=bars_per_year_override or bars_per_year(index),
            bar_size=infer_bar_size(index),
        )

    @property
    def n_bars(self) -> int:
        return len(self.close)

    def tradable(self, bounds: Bounds, what: str) -> Bounds:
        """The bars [start, last] an episode may use inside ``bounds`` (half-open split).

        Decisions start at the first bar whose window is complete (earlier history may come
        from before the split: it is the past, so it is no look-ahead); the last bar of the
        split is the last one filled. Raises DataError when fewer than 2 bars remain.
        """
        lo, hi = bounds
        start = max(lo, self.first_obs)
        if lo < self.first_obs:
            needed = self.first_obs + 2 - lo
            reason = f"window {self.window} + feature warm-up {self.features.first_valid}"
        else:
            needed, reason = 2, "a decision and its fill"
        require_bars(hi - lo, needed, f"{what} of {self.name}", reason=reason)
        return start, hi - 1


def concat_markets(segments: list[MarketData], name: str) -> tuple[MarketData, list[Bounds]]:
    """Segments laid end to end as one market (the training split and augmented copies).

    Each segment keeps its own features (and warm-up); episodes must not cross a boundary,
    so callers restrict episode starts to each segment's range (returned as bounds).
    """
    if not segments:
        raise ValueError("no segments to concatenate")
    first = segments[0]
    bounds: list[Bounds] = []
    offset = 0
    for seg in segments:
        if seg.window != first.window or seg.features.names != first.features.names:
            raise ValueError("segments must share the window and the feature set")
        bounds.append((offset, offset + seg.n_bars))
        offset += seg.n_bars

    def cat(get: Callable[[MarketData], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        return np.concatenate([get(s) for s in segments])

    indicators = Indicators(
        close=cat(lambda s: s.features.indicators.close),
        rsi=cat(lambda s: s.features.indicators.rsi),
        ma_fast=cat(lambda s: s.features.indicators.ma_fast),
        ma_slow=cat(lambda s: s.features.indicators.ma_slow),
        volatility=cat(lambda s: s.features.indicators.volatility),
    )
    features = FeatureSet(
        names=first.features.names,
        values=cat(lambda s: s.features.values),
        first_valid=first.features.first_valid,
        indicators=indicators,
    )
    market = MarketData(
        name=name,
        index=pd.DatetimeIndex(np.concatenate([s.index.to_numpy() for s in segments])),
        open=cat(lambda s: s.open),
        high=cat(lambda s: s.high),
        close=cat(lambda s: s.close),
        features=features,
        observed=cat(lambda s: s.observed),
        first_obs=first.first_obs,
        window=first.window,
        bars_per_year=first.bars_per_year,
        bar_size=first.bar_size,
    )
    return market, bounds


def episode_starts(ranges: list[Bounds], length: int) -> I64:
    """Every bar that can start an episode of ``length`` bars inside one of the tradable
    ``ranges`` ([first, last] bars, inclusive)."""
    parts = [
        np.arange(first, last - length + 1, dtype=np.int64)
        for first, last in ranges
        if last - length >= first
    ]
    if not parts:
        raise ValueError(
            f"no stretch of training data is long enough for episodes of {length} bars"
        )
    return np.concatenate(parts)
