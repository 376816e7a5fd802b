"""Walk-forward folds: K (train, validation) pairs before the test split, for selection.

A single validation split is one noisy draw: a configuration chosen on it is partly chosen
for its luck there. Walk-forward folds give K later-and-later validation windows, each
scored by a model trained only on bars before it, so a selection score can average (or take
a lower bound) over folds. The folds live strictly inside the train + validation part of a
:class:`~stevie_trainer.data.splits.SplitBounds` (the single split's own train/validation
boundary is ignored; they re-cut that region): the test split stays untouched.

Layout, for K folds over the region ``[start, test_start)``, positions into the full frame::

    | train_0 | purge | val_0 | embargo | val_1 | embargo | ... | val_K-1 | purge | test
      train_1 ends `purge` bars before val_1, and so on.

* ``purge`` bars are dropped between each fold's train and its validation, and between the
  last validation and the test split: the last training bars' rewards and the validation
  episode's look-back window must not straddle the boundary, and the test split's first
  observations must not look back into a window a fold was scored on.
* ``embargo`` bars are left out between one validation window and the next: successive
  folds' scores are computed on bars at least ``embargo`` apart, so they are less correlated
  (a fold's first observations do not look back into the previous fold's window). The
  embargo bars still train the later folds.
* ``anchored`` folds all train from the region's start (the training set grows); ``rolling``
  folds train on the same number of bars, sliding (``train_bars``, by default all the first
  fold has). With ``validation_bars`` unset, the region is cut like scikit-learn's
  ``TimeSeriesSplit``: K equal validation windows and a first training set at least as long.

Problems (data too short for the requested folds, bad arguments) are
:class:`~stevie_trainer.data.ohlcv.DataError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stevie_trainer.data.ohlcv import DataError
from stevie_trainer.data.splits import SplitBounds

__all__ = ["MIN_BARS", "Fold", "FoldScheme", "walk_forward_folds"]

FoldScheme = Literal["anchored", "rolling"]
MIN_BARS = 2  # the fewest bars of a train or validation window: one decision, one fill


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: half-open positions ``(start, stop)`` into the full frame."""

    index: int
    train: tuple[int, int]
    validation: tuple[int, int]

    def bounds(self, test: tuple[int, int]) -> SplitBounds:
        """This fold as a :class:`SplitBounds`, for code that takes one (test unchanged)."""
        return SplitBounds(train=self.train, validation=self.validation, test=test)


def _check_args(folds: int, scheme: str, purge: int, embargo: int, source: str) -> None:
    if folds < 1:
        raise DataError(f"{source}: walk-forward needs at least 1 fold, got {folds}")
    if scheme not in ("anchored", "rolling"):
        raise DataError(f"{source}: unknown fold scheme {scheme!r}; use anchored or rolling")
    if purge < 0 or embargo < 0:
        raise DataError(f"{source}: purge and embargo must be >= 0, got {purge} and {embargo}")


def _validation_bars(usable: int, folds: int, validation_bars: int | None, source: str) -> int:
    """The length of each validation window: given, or ``usable // (folds + 1)``."""
    if validation_bars is None:
        return usable // (folds + 1)
    if validation_bars < MIN_BARS:
        raise DataError(f"{source}: validation_bars must be >= {MIN_BARS}, got {validation_bars}")
    return validation_bars


def walk_forward_folds(
    bounds: SplitBounds,
    *,
    folds: int,
    scheme: FoldScheme = "anchored",
    validation_bars: int | None = None,
    train_bars: int | None = None,
    purge: int = 0,
    embargo: int = 0,
    source: str = "data",
) -> list[Fold]:
    """K chronological folds inside ``bounds``' train + validation region (see the module
    docstring for the layout). ``train_bars`` is the training length of rolling folds
    (default: all bars the first fold has) and the minimum training length of anchored ones.
    """
    _check_args(folds, scheme, purge, embargo, source)
    start, end = bounds.train[0], bounds.test[0] - purge  # the last validation ends at end
    usable = end - start - purge - (folds - 1) * embargo  # first train + K validations
    val = _validation_bars(usable, folds, validation_bars, source)
    first_train = usable - folds * val
    need = max(MIN_BARS, train_bars or MIN_BARS)
    if val < MIN_BARS or first_train < need:
        raise DataError(
            f"{source}: {bounds.test[0] - start} bars before the test split are too short for "
            f"{folds} folds of {max(val, MIN_BARS)} validation bars and >= {need} training "
            f"bars with a purge of {purge} and an embargo of {embargo}"
        )
    out: list[Fold] = []
    for k in range(folds):
        val_stop = end - (folds - 1 - k) * (val + embargo)
        val_start = val_stop - val
        train_stop = val_start - purge
        length = train_stop - start if scheme == "anchored" else train_bars or first_train
        out.append(Fold(k, (train_stop - length, train_stop), (val_start, val_stop)))
    return out
