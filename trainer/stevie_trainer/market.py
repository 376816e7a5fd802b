"""A price series prepared for simulation: features, observation rows, episode ranges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import EnvSpec
from stevie_trainer.data import require_bars
from stevie_trainer.features import FeatureSet, IndicatorParams, compute_features
from stevie_trainer.sim import REWARDS, SCHEME_TARGET, SCHEMES, SimParams
from stevie_trainer.splits import bars_per_year, infer_bar_size

Bounds = tuple[int, int]


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
    )


@dataclass(frozen=True)
class MarketData:
    """Everything the environments need from one OHLCV frame under one EnvSpec."""

    name: str
    index: pd.DatetimeIndex
    open: npt.NDArray[np.float64]
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
        needed = self.first_obs + 2 - lo if lo < self.first_obs else 2
        require_bars(
            hi - lo,
            needed,
            f"{what} of {self.name}",
            reason=f"window {self.window} + feature warm-up {self.features.first_valid}",
        )
        return start, hi - 1
