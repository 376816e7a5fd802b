"""folds: walk-forward folds stay before the test split, keep the purge gap, are chronological;
anchored folds share the start, rolling folds slide."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stevie_trainer.data.folds import MIN_BARS, Fold, walk_forward_folds
from stevie_trainer.data.ohlcv import DataError
from stevie_trainer.data.splits import SplitBounds, split_bounds


def bounds_of(n: int, train: float = 0.7, validation: float = 0.15) -> SplitBounds:
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return split_bounds(index, train_fraction=train, validation_fraction=validation)


def test_a_hand_computed_anchored_layout() -> None:
    """1000 bars: test from 850. Purge 10, embargo 5, 3 folds: the validations end at 840;
    usable = 850 - 10 - 0 - 10 - 2 x 5 = 820 bars, V = 820 // 4 = 205, first train 205."""
    folds = walk_forward_folds(bounds_of(1000), folds=3, purge=10, embargo=5)
    assert folds == [
        Fold(0, (0, 205), (215, 420)),
        Fold(1, (0, 415), (425, 630)),
        Fold(2, (0, 625), (635, 840)),
    ]
    rolling = walk_forward_folds(bounds_of(1000), folds=3, purge=10, embargo=5, scheme="rolling")
    assert [f.train for f in rolling] == [(0, 205), (210, 415), (420, 625)]
    assert [f.validation for f in rolling] == [f.validation for f in folds]


def test_explicit_sizes_and_a_fold_as_split_bounds() -> None:
    b = bounds_of(1000)
    folds = walk_forward_folds(
        b, folds=4, scheme="rolling", validation_bars=50, train_bars=300, purge=3
    )
    assert [f.validation for f in folds] == [(647, 697), (697, 747), (747, 797), (797, 847)]
    assert all(f.train[1] - f.train[0] == 300 for f in folds)
    split = folds[-1].bounds(b.test)
    assert split.get("validation") == (797, 847) and split.get("test") == b.test


def test_folds_follow_a_date_split() -> None:
    index = pd.date_range("2024-01-01", periods=2000, freq="1D", tz="UTC")
    b = split_bounds(index, test_start="2028-01-01")
    folds = walk_forward_folds(b, folds=5, purge=7)
    assert folds[-1].validation[1] == b.test[0] - 7
    assert index[folds[-1].validation[1] - 1] < pd.Timestamp("2028-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": 10, "validation_bars": 90}, "too short for 10 folds of 90 validation bars"),
        ({"folds": 500}, "too short"),
        ({"folds": 3, "scheme": "rolling", "train_bars": 800}, ">= 800 training bars"),
        ({"folds": 3, "purge": 430}, "purge of 430"),
        ({"folds": 0}, "at least 1 fold"),
        ({"folds": 2, "scheme": "expanding"}, "unknown fold scheme"),
        ({"folds": 2, "purge": -1}, "must be >= 0"),
        ({"folds": 2, "validation_bars": 1}, "validation_bars must be >= 2"),
    ],
)
def test_impossible_folds_are_a_one_line_data_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        walk_forward_folds(bounds_of(1000), source="BTC", **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and message.startswith("BTC: ")


def check_invariants(
    folds: list[Fold], b: SplitBounds, *, scheme: str, purge: int, embargo: int
) -> None:
    start, test_start = b.train[0], b.test[0]
    lengths = {f.validation[1] - f.validation[0] for f in folds}
    assert len(lengths) == 1 and min(lengths) >= MIN_BARS  # equal validation windows
    for k, f in enumerate(folds):
        assert f.index == k
        assert start <= f.train[0] and f.train[1] - f.train[0] >= MIN_BARS
        assert f.validation[0] - f.train[1] == purge  # exactly the purge gap
        assert f.validation[1] <= test_start - purge  # never in (or next to) the test split
    assert folds[-1].validation[1] == test_start - purge  # the purge before the test split
    for a, c in pairwise(folds):
        assert c.validation[0] - a.validation[1] == embargo  # chronological, embargo apart
        assert c.train[1] > a.train[1]
        if scheme == "anchored":
            assert c.train[0] == a.train[0] == start
        else:
            assert c.train[0] - a.train[0] == c.validation[0] - a.validation[0]  # slides
            assert c.train[1] - c.train[0] == a.train[1] - a.train[0]


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(20, 5000),
    k=st.integers(1, 12),
    purge=st.integers(0, 60),
    embargo=st.integers(0, 30),
    scheme=st.sampled_from(["anchored", "rolling"]),
    val_share=st.floats(0.05, 0.45),
)
def test_default_folds_keep_every_invariant_or_say_why_not(
    n: int, k: int, purge: int, embargo: int, scheme: str, val_share: float
) -> None:
    b = bounds_of(n, train=0.9 - val_share, validation=val_share)
    try:
        folds = walk_forward_folds(b, folds=k, scheme=scheme, purge=purge, embargo=embargo)  # type: ignore[arg-type]
    except DataError as exc:
        # Only when K + 1 windows of 2 bars (and the gaps) do not fit before the test split.
        usable = b.test[0] - b.train[0] - 2 * purge - (k - 1) * embargo
        assert usable // (k + 1) < MIN_BARS, str(exc)
        return
    assert len(folds) == k
    check_invariants(folds, b, scheme=scheme, purge=purge, embargo=embargo)


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(20, 5000),
    k=st.integers(1, 10),
    purge=st.integers(0, 40),
    embargo=st.integers(0, 20),
    val=st.integers(2, 400),
    train=st.one_of(st.none(), st.integers(2, 2000)),
    scheme=st.sampled_from(["anchored", "rolling"]),
)
def test_sized_folds_exist_exactly_when_they_fit(
    n: int, k: int, purge: int, embargo: int, val: int, train: int | None, scheme: str
) -> None:
    b = bounds_of(n)
    need = 2 * purge + k * val + (k - 1) * embargo + (train or MIN_BARS)
    fits = b.test[0] - b.train[0] >= need
    try:
        folds = walk_forward_folds(
            b, folds=k, scheme=scheme, validation_bars=val, train_bars=train,  # type: ignore[arg-type]
            purge=purge, embargo=embargo,
        )  # fmt: skip
    except DataError:
        assert not fits
        return
    assert fits
    check_invariants(folds, b, scheme=scheme, purge=purge, embargo=embargo)
    assert all(f.validation[1] - f.validation[0] == val for f in folds)
    first = folds[0].train[1] - folds[0].train[0]
    assert first >= (train or MIN_BARS)
    if scheme == "rolling" and train is not None:
        assert all(f.train[1] - f.train[0] == train for f in folds)
