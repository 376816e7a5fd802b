"""Market data and splits (defined in :mod:`.data`), the trading environment and the RSI/MA
expert."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from stevie_api.common import StevieModel
from stevie_api.data import DataSpec, MarketSource, SplitSpec

__all__ = [
    "ACCOUNT_FEATURES",
    "DEFAULT_FEATURES",
    "DataSpec",
    "EnvSpec",
    "ExpertSpec",
    "Feature",
    "MarketSource",
    "SplitSpec",
]

Feature = Literal[
    "log_return", "rsi", "ma_fast_ratio", "ma_slow_ratio", "volatility", "volume_zscore"
]
"""Per-bar market features (each computed from data up to the bar only)."""

DEFAULT_FEATURES: tuple[Feature, ...] = (
    "log_return",
    "rsi",
    "ma_fast_ratio",
    "ma_slow_ratio",
    "volatility",
)
ACCOUNT_FEATURES = 4
"""Account-state floats appended to every observation (position state and the like)."""


class EnvSpec(StevieModel):
    """The trading environment: observation, actions, costs and reward."""

    window: int = Field(
        default=20, ge=2, le=512, description="Bars of features in each observation."
    )
    features: list[Feature] = Field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        min_length=1,
        description="Per-bar features in the observation window (unique), all causal and "
        "scale-free: log_return (log return / rolling volatility), rsi (RSI(rsiPeriod) mapped "
        "to -1..1), ma_fast_ratio and ma_slow_ratio (close / MA(maFast or maSlow) - 1, in "
        "units of volatility), volatility (log of rolling volatility over its own long-run "
        "mean: the regime), volume_zscore (z-score of log volume; needs a volume column). "
        "Observation size is window x len(features) + 4 account features (position, "
        "unrealised return, time in position, drawdown): 104 by default.",
    )
    rsi_period: int = Field(default=14, ge=2, description="RSI look-back in bars.")
    ma_fast: int = Field(default=10, ge=2, description="Fast moving average length in bars.")
    ma_slow: int = Field(
        default=30, ge=3, description="Slow moving average length in bars (> maFast)."
    )
    volatility_window: int = Field(
        default=20, ge=2, description="Look-back in bars of the rolling volatility feature."
    )
    action_scheme: Literal["target", "trade"] = Field(
        default="target",
        description="target: each action is a target position from `positions`; trade: "
        "hold / buy / sell `tradeSize` of equity, bounded by maxPosition.",
    )
    positions: list[Annotated[float, Field(ge=-1, le=1)]] = Field(
        default_factory=lambda: [-1.0, 0.0, 1.0],
        description="Target positions (fraction of equity, -1 = fully short, 1 = fully long) "
        "of the target scheme: strictly increasing, at least 2, including 0 (flat).",
    )
    trade_size: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Trade scheme: fraction of equity bought or sold per buy/sell action.",
    )
    max_position: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Trade scheme: largest absolute position, as a fraction of equity.",
    )
    allow_short: bool = Field(
        default=False,
        description="Allow short positions; when false (the default: long/flat only), the "
        "target scheme drops its negative levels and the trade scheme cannot sell below "
        "flat. Off by default because bench/defaults.py chose long/flat by validation: "
        "shorts pay borrowBps and, on these markets, lost more than they hedged.",
    )
    fee_bps: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="Trading fee in basis points of the traded notional (10 = 0.1%).",
    )
    slippage_bps: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="Slippage in basis points of the traded notional, charged like the fee: "
        "an order decided at bar t's close fills this much worse than bar t+1's open.",
    )
    rebalance: Literal["never", "always", "drift"] = Field(
        default="never",
        description="Positions are held as units, so their weight drifts with the price until "
        "the agent picks another target. never: hold the units; always: trade back to the "
        "target weight at every bar's open; drift: trade back when the weight is more than "
        "rebalanceDrift away from the target. Every rebalancing trade pays feeBps + "
        "slippageBps on its notional.",
    )
    rebalance_drift: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="rebalance=drift: largest allowed |weight - target| (fraction of equity) "
        "before a rebalancing trade.",
    )
    no_trade_band: float = Field(
        default=0.0,
        ge=0,
        description="No-trade band, a fraction of equity (0 = off). An order is not placed "
        "when |target - weight| < noTradeBand, where weight is the position's weight at the "
        "fill's open (after the gap) and target is the new target (target scheme: the level "
        "chosen; trade scheme: the position after the buy or sell step) or, for a rebalancing "
        "trade, the target held: the account keeps its units and its target and pays nothing. "
        "An entry from flat is always placed (else a band above the smallest level would keep "
        "the account flat); closing a position is an order like any other, so a band above "
        "every possible |weight - target| never trades after the entry. With rebalance always "
        "or drift, no rebalancing trade is smaller than the band.",
    )
    min_hold_bars: int = Field(
        default=8,
        ge=0,
        description="Minimum holding period in bars (0 = off; 8 by default, chosen by "
        "bench/defaults.py on validation with long/flat). After a bar whose order "
        "changed the target (opened, resized, reversed or closed a position), the next "
        "minHoldBars decisions cannot change it: each action counts as keeping the current "
        "target, so every target is held for at least minHoldBars + 1 bars. Going flat "
        "early is refused too (the hold is a hold). Rebalancing trades still happen and do "
        "not restart the hold; a margin close-out is never held back.",
    )
    turnover_penalty: float = Field(
        default=0.0,
        ge=0,
        description="Reward-only trading cost per unit of traded notional (0 = off): each "
        "step's reward is lowered by turnoverPenalty x the notional traded that step (fill, "
        "rebalancing and close-out, as a fraction of the equity at the step's start). For "
        "log_return and drawdown_penalized it is in log-return units, before rewardScale "
        "(0.001 = the agent feels an extra 10 bps on every trade); differential_sharpe, "
        "which is dimensionless, has it subtracted as is. Equity and metrics never pay it.",
    )
    borrow_bps: float = Field(
        default=500.0,
        ge=0,
        le=10000,
        description="Cost of holding a short, in basis points a year of the short notional, "
        "charged every bar (500 = 5%/year: between a stock's easy-to-borrow fee, ~30, and "
        "crypto perpetual funding in a bull market, ~1000+).",
    )
    maintenance_margin: float = Field(
        default=0.3,
        ge=0,
        lt=1,
        description="A short is closed out (liquidated, and the episode ends) when equity "
        "falls to this fraction of the short notional, at the open if the price gapped "
        "there, else at the liquidation price when the bar's high reaches it (0.3 = FINRA "
        "rule 4210's short maintenance for stocks; 0 = only when equity reaches zero).",
    )
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalized"] = Field(
        default="log_return",
        description="Reward: log_return (log return of equity, net of costs), "
        "differential_sharpe (Moody & Saffell's differential Sharpe ratio), "
        "drawdown_penalized (log return minus drawdownPenalty x drawdown increase).",
    )
    reward_scale: float = Field(
        default=100.0,
        gt=0,
        description="Multiplier of the log_return and drawdown_penalized rewards (hourly log "
        "returns are ~1e-3); differential_sharpe is dimensionless and not scaled.",
    )
    drawdown_penalty: float = Field(
        default=1.0,
        ge=0,
        description="drawdown_penalized reward: weight of the increase in drawdown.",
    )
    sharpe_eta: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="differential_sharpe reward: adaptation rate of the moving moments.",
    )
    episode_length: int = Field(
        default=1000,
        ge=10,
        description="Bars per training episode (random start); evaluation runs one full "
        "deterministic pass over the split.",
    )

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[Feature]) -> list[Feature]:
        duplicates = sorted({f for f in value if value.count(f) > 1})
        if duplicates:
            raise ValueError(f"features must be unique (repeated: {', '.join(duplicates)})")
        return value

    @field_validator("positions")
    @classmethod
    def _positions(cls, value: list[float]) -> list[float]:
        if len(value) < 2:
            raise ValueError(f"positions needs at least 2 levels (got {len(value)})")
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError(f"positions must be strictly increasing (got {value})")
        if 0.0 not in value:
            raise ValueError(f"positions must include 0.0, the flat position (got {value})")
        return value

    @model_validator(mode="after")
    def _check(self) -> EnvSpec:
        if self.ma_slow <= self.ma_fast:
            raise ValueError(
                f"maSlow ({self.ma_slow}) must be greater than maFast ({self.ma_fast})"
            )
        return self

    @property
    def observation_size(self) -> int:
        """Floats in one observation: window x len(features) + 4 account features."""
        return self.window * len(self.features) + ACCOUNT_FEATURES


class ExpertSpec(StevieModel):
    """The seed's RSI/MA expert heuristic: a baseline and the behaviour-cloning teacher.

    RSI(env.rsiPeriod) oversold/overbought signals plus the MA(env.maFast) / MA(env.maSlow)
    crossover, with a stop loss and a take profit.
    """

    rsi_oversold: float = Field(
        default=30.0, gt=0, lt=100, description="RSI below this is oversold (a buy signal)."
    )
    rsi_overbought: float = Field(
        default=70.0,
        gt=0,
        lt=100,
        description="RSI above this is overbought (a sell signal); > rsiOversold.",
    )
    stop_loss: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Close the position when it loses this fraction of its entry price.",
    )
    take_profit: float = Field(
        default=0.10,
        gt=0,
        description="Close the position when it gains this fraction of its entry price.",
    )
    allow_short: bool = Field(default=True, description="Whether the expert may go short.")

    @model_validator(mode="after")
    def _check(self) -> ExpertSpec:
        if self.rsi_oversold >= self.rsi_overbought:
            raise ValueError(
                f"rsiOversold ({self.rsi_oversold}) must be less than rsiOverbought "
                f"({self.rsi_overbought})"
            )
        return self
