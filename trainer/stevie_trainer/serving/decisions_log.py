"""The decision log: one JSON line per decision, in rotated segment files on any storage URI.

Storage writes are whole files (an S3 object is a single PUT), so the log is a sequence of
immutable segments under the log URI, ``decisions-<start>-<instance>-<seq>.jsonl``
(``start``: the replica's start time, ``instance``: a random token so replicas and workers
never collide, ``seq``: 000000, 000001, ... in order). A segment is sealed after
``segment_records`` decisions or ``segment_seconds`` after its first one, whichever comes
first, and when the service shuts down.

The request path only appends a serialised line to the open segment, under a lock: no I/O.
A background thread writes sealed segments (rotation is checked there too, so a quiet
service still writes within ``segment_seconds``). Memory is bounded: the open segment holds
at most ``segment_records`` lines, and at most ``max_pending`` sealed segments wait for a
slow or failing store; beyond that the oldest waiting segment is dropped and counted
(``dropped``), never the request delayed. A failed write is retried with backoff.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stevie_trainer.common import storage

__all__ = ["DecisionLog", "segment_name"]


def segment_name(start: float, instance: str, seq: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    return f"decisions-{stamp}-{instance}-{seq:06d}.jsonl"


@dataclass(frozen=True)
class _Segment:
    name: str
    lines: list[bytes]


class DecisionLog:
    """Append decisions (dicts) with :meth:`record`; :meth:`close` writes what is left."""

    def __init__(
        self,
        uri: str,
        *,
        segment_records: int = 1000,
        segment_seconds: float = 60.0,
        max_pending: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if segment_records < 1 or segment_seconds <= 0 or max_pending < 1:
            raise ValueError("segment_records, segment_seconds and max_pending must be positive")
        self.uri = uri
        self.segment_records = segment_records
        self.segment_seconds = segment_seconds
        self.max_pending = max_pending
        self._clock = clock
        self._start = clock()
        self._instance = secrets.token_hex(3)
        self._seq = 0
        self._lines: list[bytes] = []
        self._opened = 0.0
        self._pending: deque[_Segment] = deque()
        self._writing: _Segment | None = None
        self._cond = threading.Condition()
        self._closing = False
        self.counts = {"records": 0, "written": 0, "segments": 0, "dropped": 0, "errors": 0}
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request path

    def record(self, entry: dict[str, Any]) -> None:
        """Append one decision to the open segment (serialises; never does I/O)."""
        line = json.dumps(entry, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        with self._cond:
            if self._closing:
                self.counts["dropped"] += 1
                return
            if not self._lines:
                self._opened = self._clock()
            self._lines.append(line)
            self.counts["records"] += 1
            if len(self._lines) >= self.segment_records:
                self._seal()

    def _seal(self) -> None:
        """Move the open segment to the writer's queue (caller holds the lock)."""
        if not self._lines:
            return
        name = segment_name(self._start, self._instance, self._seq)
        self._seq += 1
        self._pending.append(_Segment(name, self._lines))
        self._lines = []
        while len(self._pending) > self.max_pending:  # the store is behind: drop the oldest
            victim = 1 if self._pending[0] is self._writing else 0  # not the one in flight
            self.counts["dropped"] += len(self._pending[victim].lines)
            del self._pending[victim]
        self._cond.notify()

    # ------------------------------------------------------------------ writer thread

    def _next(self, backoff: float) -> _Segment | None:
        """The next segment to write (after ``backoff`` seconds when the last write failed),
        sealing the open one when it is old enough; None once closed and drained."""
        deadline = time.monotonic() + backoff
        with self._cond:
            while True:
                if self._lines and self._clock() - self._opened >= self.segment_seconds:
                    self._seal()
                if self._closing:  # no more waiting: one try for each segment left
                    self._writing = self._pending[0] if self._pending else None
                    return self._writing
                now = time.monotonic()
                if self._pending and now >= deadline:
                    self._writing = self._pending[0]
                    return self._writing
                timeout = min(self.segment_seconds / 4, 1.0)
                if self._pending:
                    timeout = min(timeout, deadline - now)
                self._cond.wait(timeout=max(timeout, 0.001))

    def _run(self) -> None:
        backoff = 0.0
        while True:
            segment = self._next(backoff)
            if segment is None:
                return
            try:
                storage.write_bytes(storage.join(self.uri, segment.name), b"".join(segment.lines))
            except Exception as err:  # storage down or slow: keep it (bounded), retry later
                with self._cond:
                    self._writing = None
                    self.counts["errors"] += 1
                    self.last_error = f"{type(err).__name__}: {err}"
                    if self._closing:  # shutting down: that was its one try
                        self._drop(segment)
                print(f"decision log: {self.last_error}", file=sys.stderr)
                backoff = min(max(backoff * 2, 0.5), 30.0)
                continue
            backoff = 0.0
            with self._cond:
                self._writing = None
                if self._pending and self._pending[0] is segment:
                    self._pending.popleft()
                    self.counts["written"] += len(segment.lines)
                    self.counts["segments"] += 1
                self._cond.notify_all()

    def _drop(self, segment: _Segment) -> None:
        if self._pending and self._pending[0] is segment:
            self._pending.popleft()
            self.counts["dropped"] += len(segment.lines)

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float = 10.0) -> bool:
        """Seal the open segment and wait until every sealed one is written (tests, drain)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._seal()
            while self._pending and time.monotonic() < deadline:
                self._cond.wait(timeout=max(deadline - time.monotonic(), 0.001))
            return not self._pending

    def close(self, timeout: float = 10.0) -> None:
        """Seal the open segment, write everything pending (one try each), stop the thread."""
        with self._cond:
            self._seal()
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            while self._pending:  # the store did not answer in time: count what is lost
                self.counts["dropped"] += len(self._pending.popleft().lines)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {
                "uri": self.uri,
                **self.counts,
                "pending": sum(len(s.lines) for s in self._pending) + len(self._lines),
                "lastError": self.last_error,
            }
