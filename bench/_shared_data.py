"""The market files of ``../shared/data`` that the out-of-sample benches read.

``$STEVIE_SHARED_DATA`` overrides the folder. These benches ask questions about those
markets, so no bundled data stands in: a missing folder or file ends the bench with a
message saying which.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["MARKETS", "SHARED", "market_files"]

SHARED = Path(
    os.environ.get("STEVIE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
MARKETS = (
    "BTCUSDT_1h.csv",
    "ETHUSDT_1h.csv",
    "SOLUSDT_1h.csv",
    "EURUSD_1h.csv",
    "BTCUSDT_1d.csv",
    "SPY_1d.csv",
)
"""The six markets, in the order the benches report them."""


def market_files(names: str, bench: str) -> list[Path]:
    """The comma-separated ``names`` in SHARED; ``bench`` exits naming what is missing."""
    if not SHARED.is_dir():
        sys.exit(
            f"{bench}: needs the shared market data at {SHARED} (../shared/data beside the "
            "repository, or $STEVIE_SHARED_DATA): it is not there"
        )
    files = [SHARED / n.strip() for n in names.split(",") if n.strip()]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        sys.exit(f"{bench}: not in {SHARED}: {', '.join(missing)}")
    return files
