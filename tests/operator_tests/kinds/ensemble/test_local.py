"""`stevie run` of an Ensemble: members first (dependency order), the backtest as a local
process, the files and the comparison table; alone, it uses members already run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.specs import template


def run_doc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name}, "spec": template(**spec)}  # fmt: skip


ENSEMBLE = {
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
    folder = data / "default" / "ensembles" / "tiny-ens" / "versions" / status["version"]
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
