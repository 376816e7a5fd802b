"""`stevie run` end to end: the reconciler with a local subprocess launcher, tiny budgets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stevie_operator.framework.artifacts import local_uid
from support.processes import default_sigint

# ``stevie run`` keys artifacts by a uid derived from kind, namespace and name: a rerun
# finds the same folder.
TINY_UID = local_uid("TrainingRun", "default", "tiny")
TINY = """\
apiVersion: stevie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: tiny
spec:
  data: {uri: "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv", barsPerYear: 252}
  env: {episodeLength: 200}
  ppo: {nSteps: 64, batchSize: 64, nEpochs: 2}
  policy: {netArch: [16, 16]}
  totalTimesteps: 2048
  nEnvs: 4
  evaluation: {evalFreq: 1024}
  checkpoint: {intervalSteps: 1024}
"""


def stevie_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stevie_operator.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def final_status(stdout: str) -> dict[str, object]:
    """The last YAML document printed: the resource with its status, as kubectl shows it."""
    start = stdout.rindex("apiVersion: stevie.dev/v1alpha1")
    doc = yaml.safe_load(stdout[start:])
    assert isinstance(doc, dict)
    return doc


@pytest.mark.slow
def test_stevie_run_trains_reports_and_a_rerun_resumes_nothing(tmp_path: Path) -> None:
    file = tmp_path / "tiny.yaml"
    file.write_text(TINY)
    data = tmp_path / "runs"
    first = stevie_run(str(file), "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    assert "buy-and-hold" in first.stdout and "expert" in first.stdout  # the baselines table
    doc = final_status(first.stdout)
    status = doc["status"]
    assert isinstance(status, dict)
    assert status["phase"] == "Succeeded" and status["observedGeneration"] == 1
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
        "Succeeded": "True",
        "Failed": "False",
    }
    assert status["progress"]["timesteps"] == 2048
    run_dir = data / "default" / "trainingruns" / "tiny" / TINY_UID
    assert status["artifacts"]["model"] == (run_dir / "model.zip").as_uri()
    assert (run_dir / "result.json").is_file()

    again = stevie_run(str(file), "--data-dir", str(data))
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout
    assert final_status(again.stdout)["status"]["phase"] == "Succeeded"  # type: ignore[index]


def test_stevie_run_rejects_a_bad_file_before_running_anything(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(TINY.replace("nEnvs: 4", "nEnvs: 0"))
    done = stevie_run(str(file), "--data-dir", str(tmp_path / "runs"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("stevie: error: ")
    assert "spec.nEnvs" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_trainer_and_a_rerun_resumes(tmp_path: Path) -> None:
    import signal
    import time

    file = tmp_path / "tiny.yaml"
    file.write_text(TINY.replace("totalTimesteps: 2048", "totalTimesteps: 16384"))
    data = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stevie_operator.cli", "run", str(file), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    checkpoints = data / "default" / "trainingruns" / "tiny" / TINY_UID / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(checkpoints.glob("*/state.json")):
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and "Traceback" not in err

    again = stevie_run(str(file), "--data-dir", str(data))
    assert again.returncode == 0, again.stderr
    assert "resuming from checkpoint at" in again.stdout
    assert final_status(again.stdout)["status"]["progress"]["timesteps"] == 16384  # type: ignore[index]
