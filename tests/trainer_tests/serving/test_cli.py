"""``ensemble-serve``: its options, and the command run as a process (ready, deciding,
stopped by SIGINT with its decision log written)."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from stevie_trainer.common import storage
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.serving.cli import add_commands, serve
from support.processes import default_sigint

# What a trainer process runs once the lead adds serving.cli to stevie_trainer.__main__.
RUN = (
    "import argparse, sys\n"
    "from stevie_trainer.serving.cli import add_commands\n"
    "p = argparse.ArgumentParser(); add_commands(p.add_subparsers(dest='command'))\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def test_options_and_defaults() -> None:
    args = parser().parse_args(["ensemble-serve", "--ensemble", "s3://b/ens/ensemble.json"])
    assert (args.ensemble, args.host, args.port, args.workers) == (
        "s3://b/ens/ensemble.json",
        "127.0.0.1",
        8080,
        1,
    )
    assert args.log_uri is None and args.max_body_bytes == 1 << 20 and args.func is serve
    args = parser().parse_args(
        [
            "ensemble-serve",
            "--ensemble",
            "e.json",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--log-uri",
            "/logs",
            "--workers",
            "2",
        ]
    )
    assert (args.host, args.port, args.log_uri, args.workers) == ("0.0.0.0", 9000, "/logs", 2)
    with pytest.raises(SystemExit):
        parser().parse_args(["ensemble-serve"])
    with pytest.raises(SystemExit):
        parser().parse_args(["ensemble-serve", "--ensemble", "e.json", "--workers", "0"])


def test_an_unreadable_document_fails_before_serving(tmp_path: Path) -> None:
    args = parser().parse_args(["ensemble-serve", "--ensemble", str(tmp_path / "none.json")])
    with pytest.raises(ValueError, match="cannot read the ensemble document"):
        serve(args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_command_serves_and_stops_cleanly(
    ensemble_json: Path,
    tmp_path: Path,
    googl: pd.DataFrame,
    ensemble: Ensemble,
    bars_of: Any,
    needed: int,
) -> None:
    port = free_port()
    log = tmp_path / "log"
    cmd = [
        sys.executable,
        "-c",
        RUN,
        "ensemble-serve",
        "--ensemble",
        str(ensemble_json),
        "--port",
        str(port),
        "--log-uri",
        str(log),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while True:
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                time.sleep(0.1)
            body = {"bars": bars_of(googl.iloc[:needed])}
            assert client.post("/v1/decide", json=body).status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    segments = storage.list_uris(str(log))
    assert len(segments) == 1 and storage.read_text(segments[0]).count("\n") == 1
