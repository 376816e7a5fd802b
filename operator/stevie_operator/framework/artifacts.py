"""Reading what pods wrote to storage, tolerantly: the operator must never crash on a
missing, half-written or foreign file (the trainer's own reader, RunStore, is strict)."""

from __future__ import annotations

import json
from typing import Any

from stevie_trainer.common import storage

__all__ = ["read_json"]


def read_json(uri: str) -> dict[str, Any] | None:
    """A JSON object from storage; None where absent, unreadable or not an object."""
    try:
        data = json.loads(storage.read_text(uri))
    except (storage.StorageError, ValueError):
        return None
    return data if isinstance(data, dict) else None
