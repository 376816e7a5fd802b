"""The simulator's mechanics under test, named in the spec rather than left to the defaults.

The EnvSpec defaults are long/flat with an 8-bar minimum hold (chosen by bench/defaults.py).
Tests of the mechanics themselves (the ledger, the cost rules, the kernel against a
reference, serving against the kernel, turnover, baselines, behaviour cloning) trade shorts
and every bar unless they ask for a rule: they say so with ``MECHANICS``.
"""

from __future__ import annotations

from typing import Any

from stevie_api.market import EnvSpec

__all__ = ["MECHANICS", "MECHANICS_DOC", "mechanics_spec"]

MECHANICS: dict[str, Any] = {"allow_short": True, "min_hold_bars": 0}
"""Shorts allowed and no minimum hold: the mechanics tests' market unless a test overrides."""
MECHANICS_DOC: dict[str, Any] = {"allowShort": True, "minHoldBars": 0}
"""``MECHANICS`` as a spec document's ``env`` keys (camelCase)."""


def mechanics_spec(**fields: Any) -> EnvSpec:
    """An EnvSpec with ``MECHANICS`` under ``fields`` (which win, e.g. a test's own hold)."""
    return EnvSpec(**{**MECHANICS, **fields})
