"""From a TrainingRun spec to markets: the real data with its splits, and the training market.

A multi-market spec (``data.markets``) is prepared market by market, each exactly as a
single-market spec of it would be (its own split, features and augmentation): the result is
the first market's :class:`Prepared` with every market's in :attr:`Prepared.parts`. A
walk-forward run (:mod:`stevie_trainer.rl.foldplan`) does the same per fold: each market's
fold windows, cut on its own bars, through :func:`with_splits`.

Only the training split is ever augmented: validation and test evaluate on the real market
(:attr:`Prepared.market`), which augmentation never touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.market import DataSpec, EnvSpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.data.augment import augment_copies, describe
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.data.splits import SplitBounds, split_bounds
from stevie_trainer.env.market import Bounds, MarketData, concat_markets, episode_starts


@dataclass
class Prepared:
    """The markets one training run works on."""

    spec: TrainingRunSpec
    frame: pd.DataFrame
    market: MarketData  # the real data, all splits (evaluation runs here)
    splits: SplitBounds
    train_market: MarketData  # training split, plus augmented copies when enabled
    train_bounds: Bounds
    ranges: list[Bounds] = field(default_factory=list)  # tradable [first, last] per segment
    augmentation: dict[str, Any] = field(default_factory=dict)
    parts: list[Prepared] = field(default_factory=list)  # every market of a multi-market run
    data: DataSpec | None = None  # this market's own single-market DataSpec (else spec.data)

    @property
    def markets(self) -> list[Prepared]:
        """Every market of the run (a single-market run's own one)."""
        return self.parts or [self]

    @property
    def train_starts(self) -> npt.NDArray[np.int64]:
        """Bars of the training market where an episode may start (never across segments)."""
        return episode_starts(self.ranges, self.spec.env.episode_length)


def load_market(
    data: DataSpec, env: EnvSpec, name: str | None = None
) -> tuple[pd.DataFrame, MarketData]:
    """The data of a spec, loaded, validated and prepared for ``env`` (features, windows)."""
    uri = data.only_uri()  # a spec listing data.markets: refused in one line, naming them
    frame = load_ohlcv(uri)
    label = name or data.symbol or storage.basename(uri)
    market = MarketData.from_frame(
        frame, env, name=label, bars_per_year_override=data.bars_per_year
    )
    return frame, market


def data_splits(market: MarketData, data: DataSpec) -> SplitBounds:
    """The spec's chronological train/validation/test split of ``market``."""
    sp = data.split
    return split_bounds(
        market.index,
        train_fraction=sp.train_fraction,
        validation_fraction=sp.validation_fraction,
        validation_start=sp.validation_start,
        test_start=sp.test_start,
        source=market.name,
    )


def prepare(spec: TrainingRunSpec, name: str | None = None) -> Prepared:
    """The markets of ``spec`` with their splits (``name``: a single market's label)."""
    if not spec.data.multi_market:
        return prepare_market(spec, spec.data, name)
    parts = [prepare_market(spec, data) for data in market_specs(spec)]
    check_names([p.market.name for p in parts])
    return replace(parts[0], parts=parts)


def market_specs(spec: TrainingRunSpec) -> list[DataSpec]:
    """The single-market DataSpec of every market of ``spec``, in its order (a
    single-market spec's own)."""
    if not spec.data.multi_market:
        return [spec.data]
    return [spec.data.single(s) for s in spec.data.sources()]


def check_names(names: list[str]) -> None:
    """Refuse two markets of one run with one name (reports and files are keyed by it)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"data.markets: two markets are named {', '.join(repeated)}; give each a symbol"
        )


def prepare_market(spec: TrainingRunSpec, data: DataSpec, name: str | None = None) -> Prepared:
    """One market of ``spec`` (``data``: the spec's own, or one of its markets')."""
    frame, market = load_market(data, spec.env, name)
    splits = data_splits(market, data)
    # Fail early, with the data's own words, if a split is too short to trade.
    for split in ("train", "validation", "test"):
        market.tradable(splits.get(split), f"{split} split")
    return replace(with_splits(spec, frame, market, splits), data=data)


def with_splits(
    spec: TrainingRunSpec, frame: pd.DataFrame, market: MarketData, splits: SplitBounds
) -> Prepared:
    """The training market of ``splits.train`` (augmented when the spec says so) beside the
    real ``market``: for the spec's own split, or a walk-forward fold's."""
    lo, hi = splits.train
    if not spec.augmentation.enabled:
        return Prepared(
            spec=spec,
            frame=frame,
            market=market,
            splits=splits,
            train_market=market,
            train_bounds=splits.train,
            ranges=[market.tradable(splits.train, "train split")],
        )
    train_frame = frame.iloc[lo:hi]
    copies = augment_copies(train_frame, spec.augmentation, spec.seed)
    segments = [
        MarketData.from_frame(
            f, spec.env, name=f"{market.name}[{k}]", bars_per_year_override=market.bars_per_year
        )
        for k, f in enumerate([train_frame, *copies])
    ]
    label = f"{market.name} (train + {len(copies)} augmented)"
    train_market, seg_bounds = concat_markets(segments, label)
    ranges = [
        seg.tradable((0, seg.n_bars), f"training segment {k}") for k, seg in enumerate(segments)
    ]
    return Prepared(
        spec=spec,
        frame=frame,
        market=market,
        splits=splits,
        train_market=train_market,
        train_bounds=(0, train_market.n_bars),
        ranges=[(lo + a, lo + b) for (lo, _), (a, b) in zip(seg_bounds, ranges, strict=True)],
        augmentation=describe(spec.augmentation) | {"copies": len(copies)},
    )
