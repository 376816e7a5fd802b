"""`stevie run` of an Ensemble: members first (dependency order), the backtest as a local
process, the files and the comparison table; alone, it uses members already run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from stevie_operator.framework.artifacts import local_uid
from stevie_trainer.data.ohlcv import load_ohlcv
from support.specs import BUNDLED, template


def run_doc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name}, "spec": template(**spec)}  # fmt: skip


ENSEMBLE: dict[str, Any] = {
    "apiVersion": "stevie.dev/v1alpha1",
    "kind": "Ensemble",
    "metadata": {"name": "tiny-ens"},
    "spec": {
        "members": [{"trainingRun": "m-ppo"}, {"trainingRun": "m-dqn"}],
        "method": "confidence",
        "reweightWindow": 20,
        "serving": {"enabled": True},
    },
}
# ``stevie run`` keys artifacts by a uid derived from kind, namespace and name.
ENS_UID = local_uid("Ensemble", "default", "tiny-ens")
DQN = {"learningStarts": 128, "bufferSize": 5000, "batchSize": 32}


def stevie(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stevie_operator.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def last_status(stdout: str) -> dict[str, Any]:
    doc = yaml.safe_load(stdout[stdout.rindex("apiVersion: stevie.dev/v1alpha1") :])
    assert isinstance(doc, dict)
    return dict(doc["status"])


@pytest.mark.slow
def test_stevie_run_trains_the_members_then_backtests_the_ensemble(tmp_path: Path) -> None:
    file = tmp_path / "all.yaml"
    # The Ensemble first in the file: it still runs after its members.
    docs = [ENSEMBLE, run_doc("m-ppo", seed=1), run_doc("m-dqn", algorithm="DQN", dqn=DQN)]
    file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    data = tmp_path / "runs"
    done = stevie("run", str(file), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    order = [done.stdout.index(f"{k}: artifacts") for k in
             ("TrainingRun/m-ppo", "TrainingRun/m-dqn", "Ensemble/tiny-ens")]  # fmt: skip
    assert order == sorted(order)
    status = last_status(done.stdout)
    assert status["phase"] == "Succeeded" and "stevie serve" in status["message"]
    assert [m["name"] for m in status["members"]] == ["m-ppo", "m-dqn"]
    assert all(m["ready"] and m["test"] is not None for m in status["members"])
    assert status["backtest"]["sharpe"] is not None and status["bestMember"] in ("m-ppo", "m-dqn")
    # The comparison table: the ensemble beside each member and the baselines.
    header = [line for line in done.stdout.splitlines() if line.startswith("Metric ")][-1]
    assert header.split()[1:] == ["ensemble", "m-ppo", "m-dqn", "buy-and-hold", "expert", "random"]
    folder = data / "default" / "ensembles" / "tiny-ens" / ENS_UID / "versions" / status["version"]
    for name in ("report.json", "ensemble.json", "table.txt", "decisions.jsonl", "equity.png",
                 "weights.png", "consensus.png"):  # fmt: skip
        assert (folder / name).stat().st_size > 0, name
    report = json.loads((folder / "report.json").read_text())
    assert set(report["splits"]) == {"validation", "test"}

    # The Ensemble alone, later: it uses the members' outputs and reports the same version.
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(ENSEMBLE))
    again = stevie("run", str(alone), "--data-dir", str(data))
    assert again.returncode == 0, again.stderr
    assert last_status(again.stdout)["version"] == status["version"]
    # ... and with a member that never ran, it names it and stops.
    other = dict(ENSEMBLE, spec={**ENSEMBLE["spec"], "members": [{"trainingRun": "never"}]})
    alone.write_text(yaml.safe_dump(other))
    missing = stevie("run", str(alone), "--data-dir", str(data))
    assert missing.returncode == 1
    waiting = last_status(missing.stdout)
    assert waiting["phase"] == "Pending" and "TrainingRun/never not found" in waiting["message"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError):
        return 0


def _decide(url: str, bars: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"bars": bars}).encode()
    request = urllib.request.Request(
        f"{url}/v1/decide", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        doc: dict[str, Any] = json.loads(response.read())
        return doc


@pytest.mark.slow
def test_stevie_serve_serves_a_finished_local_ensemble(tmp_path: Path) -> None:
    file = tmp_path / "all.yaml"
    docs = [run_doc("m-ppo", seed=1), run_doc("m-dqn", algorithm="DQN", dqn=DQN), ENSEMBLE]
    file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    data = tmp_path / "runs"
    early = stevie("serve", str(file), "--data-dir", str(data))
    assert early.returncode == 1
    assert "no finished outputs of TrainingRun/m-ppo, TrainingRun/m-dqn" in early.stderr
    assert stevie("run", str(file), "--data-dir", str(data)).returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stevie_operator.cli", "serve", str(file), "--data-dir",
         str(data), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _get(f"{url}/v2/health/ready") != 200:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        frame = load_ohlcv(BUNDLED).iloc[-400:]
        bars = [
            {"time": t.isoformat(), "open": r.open, "high": r.high, "low": r.low,
             "close": r.close} for t, r in zip(frame.index, frame.itertuples(), strict=True)
        ]  # fmt: skip
        decision = _decide(url, bars)
        assert decision["action"] in (-1.0, 0.0, 1.0) and len(decision["members"]) == 2
        assert 0.0 < decision["confidence"] <= 1.0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    logs = data / "default" / "ensembles" / "tiny-ens" / ENS_UID / "decisions"
    assert any(logs.rglob("decisions-*.jsonl")), "the decision log was not written"
