"""Real market data for tests: ``../shared/data`` when it is beside the repository (CI),
else the data that ships inside installed packages (a user's fresh clone).

- :meth:`MarketFiles.uri` gives the named shared file, or a bundled file of the same bar
  size where a test checks behaviour that any real market shows;
- :meth:`MarketFiles.exact` gives the named shared file, or skips the test naming the file,
  where the test checks facts about that file (its rows, dates, bars per year).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.paths import REPO

__all__ = ["BUNDLED_DAILY", "BUNDLED_HOURLY", "SHARED_DATA", "MarketFiles"]

SHARED_DATA = Path(
    os.environ.get("STEVIE_SHARED_DATA") or REPO.parent / "shared" / "data"
).resolve()
"""``../shared/data`` (``$STEVIE_SHARED_DATA`` overrides it: point it nowhere to run the tests as
a fresh clone would)."""
BUNDLED_DAILY = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
"""GOOGL daily bars 2009-2018 (2,335 rows), inside gym-anytrading."""
BUNDLED_HOURLY = "pkg://gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv"
"""EUR/USD hourly bars of 2017 (6,225 rows, closed at weekends), inside gym-anytrading."""

_SUBSTITUTES = {
    "BTCUSDT_1h.csv": BUNDLED_HOURLY,
    "ETHUSDT_1h.csv": BUNDLED_HOURLY,
    "SOLUSDT_1h.csv": BUNDLED_HOURLY,
    "EURUSD_1h.csv": BUNDLED_HOURLY,
    "BTCUSDT_1d.csv": BUNDLED_DAILY,
    "SPY_1d.csv": BUNDLED_DAILY,
}


@dataclass(frozen=True)
class MarketFiles:
    """The market data files a test may use (see the module docstring)."""

    folder: Path = SHARED_DATA

    @property
    def shared(self) -> bool:
        """Whether ``../shared/data`` is there."""
        return self.folder.is_dir()

    def uri(self, name: str) -> str:
        """The shared file ``name``, or bundled data of the same bar size."""
        if (self.folder / name).is_file():
            return str(self.folder / name)
        return _SUBSTITUTES[name]

    def exact(self, name: str) -> str:
        """The shared file ``name``; the test is skipped, naming it, when it is absent."""
        path = self.folder / name
        if not path.is_file():
            pytest.skip(f"needs {path} (../shared/data, see its README.md)")
        return str(path)
