"""The local launcher: a Job's container command as a process, reported as Job status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stevie_operator.framework.children import job_outcome
from stevie_operator.local.launcher import LocalLauncher


def job(name: str, code: str, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"command": ["python", "-c"], "args": [code], "env": env or []}
    return {"metadata": {"name": name, "labels": {}},
            "spec": {"template": {"spec": {"containers": [container]}}}}  # fmt: skip


def finish(launcher: LocalLauncher) -> None:
    while launcher.running():
        launcher.wait(5.0)


def test_a_job_runs_with_its_env_expanded_and_secrets_resolved(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    names = "os.environ['A'], os.environ['URL'], os.environ.get('HOME', '-'), "
    names += "os.environ.get('MISSING', '-')"
    code = f"import os, sys; open(sys.argv[1], 'w').write(' '.join([{names}]))"
    env: list[dict[str, Any]] = [
        {"name": "A", "value": "alpha"},
        {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "none", "key": "x"}}},
        {"name": "HOME", "value": "/tmp"},  # pod-only: a local run keeps the user's HOME
        {"name": "OUT", "value": str(out)},
    ]
    spec = job("ok", code, env)
    spec["spec"]["template"]["spec"]["containers"][0]["args"] += ["$(OUT)"]
    secrets = {("db", "url"): "postgresql://u:p@h/d"}
    launcher = LocalLauncher(fork=False)
    launcher.start(spec, lambda name, key: secrets.get((name, key)), tmp_path / "ok.log")
    assert launcher.status("ok") is not None
    finish(launcher)
    words = out.read_text().split()
    assert words[:2] == ["alpha", "postgresql://u:p@h/d"] and words[3] == "-"
    assert words[2] != "/tmp"
    phase, _, _, finished = job_outcome(
        {"metadata": {"name": "ok"}, "status": launcher.status("ok")}
    )
    assert phase == "Succeeded" and finished is not None
    launcher.start(spec, lambda name, key: None, None)  # started once: a second start is a no-op
    assert list(launcher.processes) == ["ok"]


def test_a_failing_process_is_a_failed_job_naming_its_exit_code_and_log(tmp_path: Path) -> None:
    launcher = LocalLauncher(fork=False)
    log = tmp_path / "logs" / "bad.log"
    launcher.start(job("bad", "import sys; print('boom'); sys.exit(3)"), lambda n, k: None, log)
    finish(launcher)
    status = launcher.status("bad")
    assert status is not None and status["failed"] == 1 and "active" not in status
    phase, reason, message, _ = job_outcome({"metadata": {"name": "bad"}, "status": status})
    assert (phase, reason) == ("Failed", "TrainerExited")
    assert "the trainer refused its input (exit 3)" in message and str(log) in message
    assert log.read_text().strip() == "boom"
    assert launcher.status("never") is None


def test_stop_interrupts_running_processes(tmp_path: Path) -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)")  # fmt: skip
    launcher = LocalLauncher(fork=False)
    log = tmp_path / "slow.log"
    launcher.start(job("slow", code), lambda n, k: None, log)
    while "ready" not in (log.read_text() if log.exists() else ""):
        launcher.wait(0.05)
    assert [p.name for p in launcher.running()] == ["slow"]
    assert launcher.status("slow") == {"startTime": launcher.processes["slow"].started.isoformat(),
                                       "active": 1}  # fmt: skip
    launcher.stop(grace=10)
    assert launcher.running() == []
    assert launcher.processes["slow"].exit_code() == 42  # it got SIGINT, as from Ctrl-C
