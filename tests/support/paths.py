"""Where things are in the repository, for tests in any folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["CRDS", "EXAMPLES", "REPO", "example"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"


def example(name: str) -> dict[str, Any]:
    """The (first) resource of ``examples/<name>``."""
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(doc, dict)
    return doc
