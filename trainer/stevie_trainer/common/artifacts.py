"""A run's artifacts under one storage URI, and its checkpoints.

Layout under ``--out``::

    model.zip            best model by validation Sharpe
    final.zip            model at the end of training
    result.json          metrics, baselines, BC, curriculum, timings, versions
    progress.json        timesteps, stage, best validation Sharpe (updated while training)
    equity.png           agent vs buy-and-hold vs expert on the test split
    checkpoints/ckpt-<timesteps>/{model.zip, replay.pkl, state.json}

A checkpoint is complete once its ``state.json`` exists: it is written last, and every file
is written atomically, so a crash at any moment leaves either a complete checkpoint or one
that resume ignores.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stevie_trainer.common import storage

_CKPT = re.compile(r"/checkpoints/ckpt-(\d+)/state\.json$")


@dataclass(frozen=True)
class Checkpoint:
    timesteps: int
    uri: str
    state: dict[str, Any]

    def model_bytes(self) -> bytes:
        return storage.read_bytes(storage.join(self.uri, "model.zip"))

    def replay_bytes(self) -> bytes | None:
        uri = storage.join(self.uri, "replay.pkl")
        return storage.read_bytes(uri) if storage.exists(uri) else None


def iso_now() -> str:
    """Now in UTC as an ISO 8601 string to the second (for JSON documents)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunStore:
    """Reads and writes one run's artifacts (any storage URI: folder or s3:// prefix)."""

    def __init__(self, out: str) -> None:
        self.out = out.rstrip("/")

    def uri(self, *parts: str) -> str:
        return storage.join(self.out, *parts)

    def write_json(self, name: str, payload: dict[str, Any]) -> str:
        uri = self.uri(name)
        storage.write_text(uri, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return uri

    def read_json(self, name: str) -> dict[str, Any] | None:
        uri = self.uri(name)
        if not storage.exists(uri):
            return None
        value = json.loads(storage.read_text(uri))
        return value if isinstance(value, dict) else None

    def write_bytes(self, name: str, data: bytes) -> str:
        uri = self.uri(name)
        storage.write_bytes(uri, data)
        return uri

    # --- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(
        self,
        timesteps: int,
        model: bytes,
        state: dict[str, Any],
        *,
        replay: bytes | None = None,
        keep: int = 3,
    ) -> Checkpoint:
        base = self.uri("checkpoints", f"ckpt-{timesteps:012d}")
        storage.write_bytes(storage.join(base, "model.zip"), model)
        if replay is not None:
            storage.write_bytes(storage.join(base, "replay.pkl"), replay)
        payload = state | {"timesteps": timesteps, "saved_at": iso_now()}
        storage.write_text(storage.join(base, "state.json"), json.dumps(payload, indent=2))
        self._prune(keep)
        return Checkpoint(timesteps, base, payload)

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first."""
        found = []
        for uri in storage.list_uris(self.uri("checkpoints")):
            match = _CKPT.search(uri)
            if match:
                base = uri[: -len("/state.json")]
                state = json.loads(storage.read_text(uri))
                found.append(Checkpoint(int(match.group(1)), base, state))
        return sorted(found, key=lambda c: c.timesteps)

    def latest_checkpoint(self) -> Checkpoint | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def _prune(self, keep: int) -> None:
        found = self.checkpoints()
        for old in found[: max(0, len(found) - keep)]:
            # state.json first: from then on resume ignores the rest of this checkpoint.
            storage.delete(storage.join(old.uri, "state.json"))
            for name in ("model.zip", "replay.pkl"):
                storage.delete(storage.join(old.uri, name))
