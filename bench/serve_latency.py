"""How fast is the Ensemble's decision service? Latency and decisions/s over real HTTP.

Side by side, in one run, each server in its own process pinned to core 0 (clients on
core 1, a closed loop of C keep-alive connections speaking plain HTTP/1.1 on loopback):

- ``stevie``: ``ensemble-serve`` (stevie_trainer.serving), the backtest's decision;
- ``naive``: a minimal FastAPI app that, per request, builds each member's market from a
  DataFrame (``MarketData.from_frame``), its observation, calls SB3 ``model.predict`` per
  member and majority-votes (no dynamic weights: it does less than ``stevie``);
- ``http floor``: FastAPI + uvicorn reading the same body and answering a constant: what
  the transport alone costs on this core.

p50/p99 latency and decisions/s at 1, 16 and 64 clients, for ensembles of 3 and 8 members
(8: the 3 trained members' folders under 8 names), and cold start (process start to ready).
Members: ``--members-dir`` (TrainingRun folders), else 3 tiny ones trained into a temp folder
(~10 s). Each cell is bounded by ``--requests`` and ``--seconds``. Requests carry the real
GOOGL daily bars the ensemble needs (ISO times), from 32 different windows.

    python bench/serve_latency.py [--members-dir DIR] [--requests 3000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request  # module level: FastAPI resolves the annotations here
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
SERVER_CORE, CLIENT_CORE = 0, 1
CLIENTS = (1, 16, 64)


# ----------------------------------------------------------------------------- servers


def naive_app(document: str) -> Any:
    """The baseline: pandas features per member, SB3 predict per member, majority vote."""
    import numpy as np
    import pandas as pd

    from stevie_trainer.ensemble.agent import FLAT, load_member
    from stevie_trainer.ensemble.members import ResolvedMember

    doc = json.loads(Path(document).read_text())
    members = [load_member(ResolvedMember.from_dict(m)) for m in doc["members"]]
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/decide")
    async def decide(body: dict[str, Any]) -> dict[str, Any]:
        bars = body["bars"]
        frame = pd.DataFrame(bars)
        frame.index = pd.to_datetime(frame.pop("time"), utc=True, format="ISO8601")
        t = len(frame) - 1
        votes = []
        for m in members:
            obs = m.observations(m.market(frame), np.array([t]), FLAT)
            action, _ = m.policy.model.predict(obs, deterministic=True)
            votes.append(float(m.levels[int(action[0])]))
        counts = Counter(votes)
        top = max(counts.values())
        level = min((v for v in counts if counts[v] == top), key=lambda v: (abs(v), v))
        return {"action": level, "votes": votes}

    return app


def floor_app() -> Any:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/decide")
    async def decide(request: Request) -> Response:
        await request.body()
        return Response(b'{"action":0.0}', media_type="application/json")

    return app


def run_server(kind: str, document: str, port: int) -> None:
    """A server process (this file run with --serve): pinned to SERVER_CORE, one torch thread."""
    os.sched_setaffinity(0, {SERVER_CORE})
    import torch
    import uvicorn

    torch.set_num_threads(1)
    if kind == "stevie":
        sys.argv = [
            "ensemble-serve",
            "--ensemble",
            document,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        from stevie_trainer.serving.cli import add_commands

        parser = argparse.ArgumentParser()
        add_commands(parser.add_subparsers(dest="command"))
        args = parser.parse_args(sys.argv)
        sys.exit(args.func(args))
    app = naive_app(document) if kind == "naive" else floor_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


ROUTES = {
    "stevie": ("/v2/health/ready", "/v1/decide"),
    "naive": ("/health", "/decide"),
    "http floor": ("/health", "/decide"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, document: str) -> tuple[subprocess.Popen[bytes], int, float]:
    """Start a server; (process, port, seconds from process start to ready)."""
    import httpx

    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--document", document, "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = f"http://127.0.0.1:{port}{ROUTES[kind][0]}"
    while True:
        try:
            if httpx.get(ready, timeout=1.0).status_code == 200:
                return proc, port, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            raise RuntimeError(f"{kind} server did not become ready")
        time.sleep(0.02)


# ----------------------------------------------------------------------------- clients


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(head[9:12])


async def _load(
    port: int, requests: list[bytes], clients: int, budget: int, seconds: float
) -> tuple[list[float], float, int]:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    for r, w in conns:  # warm each connection
        await _exchange(r, w, requests[0])
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent, errors
        while sent < budget and time.perf_counter() < deadline:
            sent += 1
            t = time.perf_counter()
            status = await _exchange(reader, writer, requests[(sent + k) % len(requests)])
            latencies.append(time.perf_counter() - t)
            errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker(k, r, w) for k, (r, w) in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for _, w in conns:
        w.close()
    return latencies, elapsed, errors


def measure(
    port: int, requests: list[bytes], clients: int, budget: int, seconds: float
) -> dict[str, float]:
    import numpy as np

    lat, elapsed, errors = asyncio.run(_load(port, requests, clients, budget, seconds))
    ms = np.asarray(lat) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": len(lat) / elapsed,
        "n": len(lat),
        "errors": errors,
    }


def http_requests(path: str, bodies: list[bytes]) -> list[bytes]:
    return [
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]


# ----------------------------------------------------------------------------- setup


def member_folders(members_dir: str | None, work: Path) -> list[Path]:
    if members_dir:
        found = sorted(p for p in Path(members_dir).iterdir() if (p / "model.zip").is_file())
        if not found:
            raise SystemExit(f"no member folders (with model.zip) under {members_dir}")
        return found
    sys.path.insert(0, str(ROOT / "tests"))
    from support.ensemble import train_members

    print("training 3 tiny members (PPO, DQN, BC PPO) ...", flush=True)
    trained = train_members(work / "members")
    return [trained.folder / name for name in ("ppo", "dqn", "bc")]


def write_documents(folders: list[Path], work: Path) -> dict[int, tuple[str, int]]:
    """ensemble-3.json and ensemble-8.json: {members: (path, bars needed)}."""
    from stevie_trainer.ensemble.decide import document, from_document
    from stevie_trainer.ensemble.members import MemberRef, resolve
    from stevie_trainer.serving.engine import Engine

    out = {}
    for n in (3, 8):
        refs = [MemberRef(f"m{k}", "TrainingRun", str(folders[k % len(folders)])) for k in range(n)]
        doc = document(
            f"bench{n}", [resolve(r) for r in refs], "performance_weighted", reweight_window=20
        )
        path = work / f"ensemble-{n}.json"
        path.write_text(json.dumps(doc))
        out[n] = (str(path), Engine(from_document(doc)).bars_needed)
    return out


def bodies(bars_needed: int) -> list[bytes]:
    from stevie_trainer.data.ohlcv import load_ohlcv

    frame = load_ohlcv(BUNDLED)
    out = []
    for start in range(0, 32 * 60, 60):
        window = frame.iloc[start : start + bars_needed]
        rows = [
            {
                "time": t.isoformat().replace("+00:00", "Z"),
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "volume": b.volume,
            }
            for t, b in zip(window.index, window.itertuples(), strict=True)
        ]
        out.append(json.dumps({"bars": rows}).encode())
    return out


def run_cells(
    kind: str,
    document: str,
    reqs: list[bytes],
    args: argparse.Namespace,
    table: list[dict[str, Any]],
    members: int,
) -> None:
    proc, port, cold = start(kind, document)
    try:
        for clients in CLIENTS:
            cell = measure(port, reqs, clients, args.requests, args.seconds)
            table.append(
                {"server": kind, "members": members, "clients": clients, "cold": cold, **cell}
            )
            print(
                f"  {kind:<10} {members} members, {clients:>2} clients: "
                f"{cell['rps']:7.0f}/s p99 {cell['p99']:7.2f} ms",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)


def report(table: list[dict[str, Any]]) -> None:
    print(
        f"\n{'server':<11}{'members':>8}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'decisions/s':>13}{'requests':>10}{'errors':>8}{'cold s':>8}"
    )
    for r in table:
        print(
            f"{r['server']:<11}{r['members']:>8}{r['clients']:>8}{r['p50']:>9.2f}"
            f"{r['p99']:>9.2f}{r['rps']:>13.0f}{r['n']:>10}{r['errors']:>8}{r['cold']:>8.1f}"
        )
    cell = {(r["server"], r["members"], r["clients"]): r for r in table}
    for members in (3, 8):
        s, n = cell[("stevie", members, 16)], cell[("naive", members, 16)]
        print(
            f"{members} members, 16 clients: stevie / naive = {s['rps'] / n['rps']:.1f}x "
            f"decisions/s ({'meets' if s['rps'] >= 5 * n['rps'] else 'MISSES'} the 5x target); "
            f"p99 {s['p99']:.2f} ms ({'meets' if s['p99'] <= 5 else 'MISSES'} the 5 ms target)"
        )
    floor = cell.get(("http floor", 0, 16))
    if floor:
        print(
            f"http floor (FastAPI + uvicorn, constant answer), 16 clients: p99 "
            f"{floor['p99']:.2f} ms, {floor['rps']:.0f}/s"
        )


def http_stack() -> str:
    """What uvicorn's "auto" picks: httptools and uvloop when installed, else h11/asyncio."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members-dir", help="TrainingRun folders to serve (default: train 3)")
    parser.add_argument("--requests", type=int, default=3000, help="at most, per cell")
    parser.add_argument("--seconds", type=float, default=5.0, help="at most, per cell")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--document", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, args.document, args.port)
        return
    os.sched_setaffinity(0, {CLIENT_CORE})
    print(
        f"cores: server {SERVER_CORE}, clients {CLIENT_CORE}; uvicorn with {http_stack()}; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        docs = write_documents(member_folders(args.members_dir, work), work)
        for members, (document, needed) in docs.items():
            print(f"{members} members: {needed} bars a request", flush=True)
            payloads = bodies(needed)
            for kind in ("stevie", "naive"):
                run_cells(
                    kind, document, http_requests(ROUTES[kind][1], payloads), args, table, members
                )
        run_cells(
            "http floor", docs[3][0], http_requests("/decide", bodies(docs[3][1])), args, table, 0
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} (other jobs share these cores)")
    report(table)


if __name__ == "__main__":
    main()
