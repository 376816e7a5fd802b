"""The decision log: segments written and rotated (by count, by age, at shutdown) on local
storage and S3, read back; a slow or failing store never holds up a decision."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stevie_trainer.common import storage
from stevie_trainer.serving.decisions_log import DecisionLog

FIELDS = {
    "requestId",
    "time",
    "barTime",
    "bars",
    "votes",
    "weights",
    "action",
    "proposed",
    "trade",
    "held",
    "holdLeft",
    "reason",
    "confidence",
    "consensus",
    "version",
}


def read_segments(uri: str) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for seg in storage.list_uris(uri):
        lines = storage.read_text(seg).splitlines()
        out.append((storage.basename(seg), [json.loads(line) for line in lines]))
    return out


def decide_n(running: Any, frames: list[pd.DataFrame], bars_of: Any) -> list[dict[str, Any]]:
    answers = []
    with running.client() as client:
        for k, frame in enumerate(frames):
            got = client.post(
                "/v1/decide", json={"bars": bars_of(frame)}, headers={"x-request-id": f"log-{k}"}
            )
            assert got.status_code == 200, got.text
            answers.append(got.json())
    return answers


def frames_of(googl: pd.DataFrame, needed: int, n: int) -> list[pd.DataFrame]:
    return [googl.iloc[s : s + needed] for s in range(0, 40 * n, 40)]


def test_segments_rotate_by_count_and_at_shutdown(
    serve: Any, tmp_path: Path, googl: Any, needed: int, bars_of: Any
) -> None:
    log = str(tmp_path / "log")
    running = serve(log_uri=log, segment_records=3, segment_seconds=3600)
    answers = decide_n(running, frames_of(googl, needed, 7), bars_of)
    assert running.state.log is not None and running.state.log.flush(10)
    assert [len(lines) for _, lines in read_segments(log)] == [3, 3, 1]  # the 7th: sealed by flush
    more = decide_n(running, frames_of(googl, needed, 2), bars_of)
    running.stop()  # shutdown writes the open segment
    segments = read_segments(log)
    names = [name for name, _ in segments]
    assert [len(lines) for _, lines in segments] == [3, 3, 1, 2]
    assert names == sorted(names) and all(n.startswith("decisions-") for n in names)
    assert [n.rsplit("-", 1)[1] for n in names] == [f"{k:06d}.jsonl" for k in range(4)]
    records = [r for _, lines in segments for r in lines]
    assert [r["requestId"] for r in records] == [f"log-{k}" for k in range(7)] + ["log-0", "log-1"]
    for record, answer in zip(records, answers + more, strict=True):
        assert set(record) == FIELDS
        assert record["action"] == answer["action"] and record["proposed"] == answer["proposed"]
        assert (record["trade"], record["held"]) == (answer["trade"], answer["held"])
        assert (record["holdLeft"], record["reason"]) == (answer["holdLeft"], answer["reason"])
        assert record["votes"] == {m["name"]: m["vote"] for m in answer["members"]}
        assert record["weights"] == {m["name"]: m["weight"] for m in answer["members"]}
        assert record["barTime"] == answer["barTime"] and record["version"] == answer["version"]


def test_segments_on_s3(serve: Any, s3_server: Any, googl: Any, needed: int, bars_of: Any) -> None:
    log = s3_server.uri("decisions")
    running = serve(log_uri=log, segment_records=2)
    decide_n(running, frames_of(googl, needed, 3), bars_of)
    running.stop()
    segments = read_segments(log)
    assert [len(lines) for _, lines in segments] == [2, 1]
    assert all(name.endswith(".jsonl") for name, _ in segments)


def test_rotation_by_age(tmp_path: Path) -> None:
    now = [1000.0]
    log = DecisionLog(str(tmp_path), segment_records=100, segment_seconds=5.0, clock=lambda: now[0])
    try:
        log.record({"k": 1})
        log.record({"k": 2})
        now[0] += 6.0  # the open segment is old: the writer seals and writes it by itself
        deadline = time.monotonic() + 10
        while not storage.list_uris(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.02)
        log.record({"k": 3})
    finally:
        log.close()
    assert [[r["k"] for r in lines] for _, lines in read_segments(str(tmp_path))] == [[1, 2], [3]]


def test_a_slow_store_never_blocks_and_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, writing = threading.Event(), threading.Event()
    real = storage.write_bytes

    def slow(uri: str, data: bytes) -> None:
        writing.set()
        release.wait(30)  # a store that hangs
        real(uri, data)

    monkeypatch.setattr(storage, "write_bytes", slow)
    log = DecisionLog(str(tmp_path), segment_records=10, max_pending=2)
    for k in range(10):
        log.record({"k": k})
    assert writing.wait(10)  # the first segment is in flight, and stuck
    started = time.perf_counter()
    for k in range(10, 100):
        log.record({"k": k})
    elapsed = time.perf_counter() - started
    snap = log.snapshot()
    assert elapsed < 0.5  # no write on the request path
    assert snap["pending"] <= 3 * 10  # one in flight + max_pending sealed + the open one
    assert snap["dropped"] >= 100 - 3 * 10
    release.set()
    log.close()
    written = [r["k"] for _, lines in read_segments(str(tmp_path)) for r in lines]
    assert written[:10] == list(range(10))  # the one in flight was kept
    assert written[-10:] == list(range(90, 100))  # and the newest
    assert log.counts["written"] + log.counts["dropped"] == 100


def test_a_failing_store_is_retried_then_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = storage.write_bytes

    def flaky(uri: str, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise storage.StorageError("store down")
        real(uri, data)

    monkeypatch.setattr(storage, "write_bytes", flaky)
    log = DecisionLog(str(tmp_path), segment_records=2)
    log.record({"k": 0})
    log.record({"k": 1})
    assert log.flush(10)
    log.close()
    assert log.counts["errors"] == 1 and log.counts["written"] == 2
    assert "store down" in str(log.snapshot()["lastError"])
    assert [len(lines) for _, lines in read_segments(str(tmp_path))] == [2]
