"""`stevie run` of a PBTPopulation: a tiny population end to end, rerun, interrupt + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stevie_operator.framework.artifacts import local_uid
from support.processes import default_sigint
from support.specs import pbt_population

POP = "default/pbtpopulations"
# ``stevie run`` keys artifacts by a uid it derives from the name: the same on every run.
RESUME_UID = local_uid("PBTPopulation", "default", "resume-pbt")


def command(file: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "stevie_operator.cli", "run", str(file), "--data-dir", str(data)]


def run(file: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(file, data), capture_output=True, text=True, timeout=600)


def status_of(stdout: str) -> dict[str, object]:
    doc = yaml.safe_load(stdout[stdout.index("apiVersion:") :])
    assert isinstance(doc, dict)
    return dict(doc["status"])


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("result.json")}


@pytest.mark.slow
def test_a_tiny_population_evolves_reports_and_reruns_without_retraining(tmp_path: Path) -> None:
    file = tmp_path / "pbt.yaml"
    file.write_text(yaml.safe_dump(pbt_population()))
    data = tmp_path / "runs"
    done = run(file, data)
    assert done.returncode == 0, done.stderr + done.stdout
    out = data / POP / "tiny-pbt" / local_uid("PBTPopulation", "default", "tiny-pbt")
    status = status_of(done.stdout)
    assert status["phase"] == "Succeeded" and status["intervalsCompleted"] == 9
    assert status["membersFailed"] == 0 and status["membersRunning"] == 0
    # The best member on the test split beside the baselines, printed and in the status.
    assert "best member" in done.stdout and "buy-and-hold" in done.stdout
    assert "expert" in done.stdout and status["test"]
    summary = json.loads((out / "pbt_summary.json").read_text())
    intervals = {(r["member"], r["interval"]): r for r in summary["intervals"]}
    assert sorted(intervals) == [(m, i) for m in range(3) for i in range(3)]
    best = max(intervals.values(), key=lambda r: r["fitness"])
    assert summary["best"]["fitness"] == best["fitness"] == status["bestFitness"]
    assert set(summary["best"]["test"]) == {"best member", "buy-and-hold", "expert", "random"}
    # Every exploit is an Event line, in lineage.json, and started from the donor's checkpoint.
    lineage = json.loads((out / "lineage.json").read_text())["exploits"]
    assert done.stdout.count("Exploit: member") == len(lineage) == status["exploits"]
    assert lineage, "3 members x 3 intervals async: the worst member copies at least once"
    for ev in lineage:
        row = intervals[(ev["member"], ev["interval"])]
        assert row["init_checkpoint"] == ev["checkpoint"]
        assert ev["checkpoint"].endswith(f"m{ev['copied_from']}/i{ev['copied_interval'] - 1}")
    for name in ("fitness.png", "hyperparameters.png", "lineage.png", "best/model.zip"):
        assert (out / name).stat().st_size > 0
    assert summary["overhead"]["member_wall_seconds"] > summary["overhead"]["training_seconds"]
    # How much is luck: the DSR of the best among the 9 (member, interval) evaluations, from
    # the per-bar validation returns every interval stored; in the status as in the summary.
    luck = summary["overfitting"]
    shown = status["overfitting"]
    assert isinstance(shown, dict)
    assert luck["evaluations"] == 9 and shown["trials"] == 9
    assert luck["selected"] == {"member": summary["best"]["member"],
                                "interval": summary["best"]["interval"]}  # fmt: skip
    assert shown["note"] == "; ".join(luck["notes"])
    for m, i in intervals:
        assert (out / "members" / f"m{m}" / f"i{i}" / "validation_returns.npy").stat().st_size
    if luck["deflated_sharpe"] is None:  # fewer than 2 Sharpes (policies that never trade)
        assert "deflatedSharpe" not in shown
        assert "DSR not computed" in luck["notes"][0]
    else:
        assert shown["deflatedSharpe"] == luck["deflated_sharpe"]["dsr"]
        assert "stored validation_returns.npy" in luck["notes"][0]
    assert "How much is luck (9 evaluation(s) tried" in done.stdout

    before = mtimes(out / "members")
    # As on a cluster, parallelism may change on a population that has started; nothing
    # else may (test_runner.py: a changed interval is Degraded, SpecChanged).
    file.write_text(yaml.safe_dump(pbt_population(parallelism=3)))
    again = run(file, data)
    assert again.returncode == 0, again.stderr
    assert mtimes(out / "members") == before  # nothing retrained
    assert status_of(again.stdout)["bestFitness"] == status["bestFitness"]


@pytest.mark.slow
def test_an_interrupted_population_resumes_without_redoing_finished_intervals(
    tmp_path: Path,
) -> None:
    file = tmp_path / "pbt.yaml"
    doc = pbt_population("resume-pbt", perturbationInterval=512, stopping={"maxIntervals": 3})
    file.write_text(yaml.safe_dump(doc))
    data = tmp_path / "runs"
    state = data / POP / "resume-pbt" / RESUME_UID / "population.json"
    proc = subprocess.Popen(
        command(file, data),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["intervals_completed"] >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the runner and its children
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err.decode()
    finished = {k: v for k, v in mtimes(data / POP / "resume-pbt" / RESUME_UID / "members").items()}
    completed = json.loads(state.read_text())["intervals_completed"]
    assert 2 <= completed < 9 and len(finished) >= 2

    done = run(file, data)
    assert done.returncode == 0, done.stderr + done.stdout
    assert status_of(done.stdout)["intervalsCompleted"] == 9
    after = mtimes(data / POP / "resume-pbt" / RESUME_UID / "members")
    assert {k: after[k] for k in finished} == finished  # finished intervals were kept
