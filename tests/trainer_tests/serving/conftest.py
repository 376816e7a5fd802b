"""The decision service running for real: uvicorn on a free loopback port (in a thread of
the test process), an ensemble.json of the session's tiny trained members, GOOGL bars."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn

from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.decide import Ensemble, document, from_document
from stevie_trainer.ensemble.members import resolve
from stevie_trainer.serving.app import create_app
from stevie_trainer.serving.engine import Engine
from stevie_trainer.serving.service import State
from support.ensemble import TrainedMembers
from support.specs import BUNDLED


@dataclass
class Running:
    """A service on ``url``; ``state`` is its replica state (engine, stats, log)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    state: State

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start(app: Any, *, wait_ready: bool = True, timeout: float = 60.0) -> Running:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (until ready, by default)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = Running(f"http://127.0.0.1:{port}", server, thread, app.state.service)
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    if wait_ready:
        with running.client() as client:
            while client.get("/v2/health/ready").status_code != 200:
                if time.monotonic() > deadline or running.state.error:
                    running.stop()
                    raise RuntimeError(f"not ready: {running.state.error}")
                time.sleep(0.02)
    return running


def write_document(trained: TrainedMembers, path: Path, **fields: Any) -> Path:
    """ensemble.json of the trained members; ``fields``: ``document``'s keyword arguments
    (method, reweight_window, no_trade_band, min_hold_bars)."""
    resolved = [resolve(r) for r in trained.refs()]
    doc = document(
        "ens",
        resolved,
        fields.pop("method", "performance_weighted"),
        reweight_window=fields.pop("reweight_window", 20),
        **fields,
    )
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="session")
def ensemble_json(
    trained_members: TrainedMembers, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_document(trained_members, tmp_path_factory.mktemp("serving") / "ensemble.json")


@pytest.fixture(scope="session")
def ensemble(ensemble_json: Path) -> Ensemble:
    """The same ensemble, loaded directly (what the backtest decides with)."""
    return from_document(json.loads(ensemble_json.read_text()))


@pytest.fixture(scope="session")
def googl() -> pd.DataFrame:
    return load_ohlcv(BUNDLED)


@pytest.fixture(scope="module")
def service(ensemble_json: Path) -> Iterator[Running]:
    """One service for a module's tests (its statistics accumulate across them)."""
    running = start(create_app(str(ensemble_json), torch_threads=None))
    yield running
    running.stop()


@pytest.fixture
def serve(ensemble_json: Path) -> Iterator[Callable[..., Running]]:
    """Start services with other settings (stopped after the test)."""
    started: list[Running] = []

    def make(
        document: Path | str = ensemble_json, *, wait_ready: bool = True, **settings: Any
    ) -> Running:
        settings.setdefault("torch_threads", None)
        running = start(create_app(str(document), **settings), wait_ready=wait_ready)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def rows(frame: pd.DataFrame, *, numeric_time: bool = False) -> list[dict[str, Any]]:
    """The frame's bars as POST /v1/decide rows."""
    out = []
    for t, bar in zip(frame.index, frame.itertuples(index=False), strict=True):
        when: Any = int(t.timestamp()) if numeric_time else t.isoformat().replace("+00:00", "Z")
        row = {"time": when, "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close}
        if "volume" in frame.columns:
            row["volume"] = bar.volume
        out.append(row)
    return out


@pytest.fixture(scope="session")
def bars_of() -> Callable[..., list[dict[str, Any]]]:
    return rows


@pytest.fixture(scope="session")
def needed(ensemble: Ensemble) -> int:
    """Bars a request needs (the service's count: one more than Ensemble.bars_needed with a
    reweight window, see Engine.bars_needed)."""
    return Engine(ensemble).bars_needed
