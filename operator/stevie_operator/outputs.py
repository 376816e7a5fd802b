"""What a trainer has written so far: progress.json and result.json under its run URI."""

from __future__ import annotations

import json
from typing import Any

from stevie_trainer.common import storage


def read_json(uri: str) -> dict[str, Any] | None:
    """A JSON object from storage; None where absent, unreadable or not an object."""
    try:
        data = json.loads(storage.read_text(uri))
    except (storage.StorageError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_outputs(uri: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(progress.json, result.json) of a run, None where absent or unreadable."""
    return read_json(storage.join(uri, "progress.json")), read_json(
        storage.join(uri, "result.json")
    )
