"""``stevie run FILE.yaml``: the operator's reconcile loop with no cluster.

The same pure reconciler that the kopf handlers call plans the work; a LocalLauncher runs
the planned Job's trainer container as a local subprocess (same command, same arguments,
``$(VAR)`` expanded from the container's env as Kubernetes would), artifacts go under a local
data directory, and the final status is printed as ``kubectl get -o yaml`` would show it.
Ctrl-C stops the trainer (its checkpoints stay); running the same file again resumes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from stevie_api.hpo import HPOStudy
from stevie_api.loader import load_resources
from stevie_api.pbt import PBTPopulation
from stevie_api.training import TrainingRun
from stevie_operator.config import OperatorConfig
from stevie_operator.outputs import read_json
from stevie_operator.reconcile import Observed, Plan, reconcile_training_run, run_location
from stevie_trainer.common import storage

_POD_ONLY = ("HOME", "MPLCONFIGDIR", "STEVIE_METRICS_PORT")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class LocalLauncher:
    """Runs a Job's first container as a subprocess and reports it as a Job status would."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.name: str | None = None
        self.started: datetime | None = None

    def start(self, job: Mapping[str, Any]) -> None:
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        argv = [*container.get("command", []), *container.get("args", [])]
        argv = [_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]
        if argv and argv[0] == "python":
            argv[0] = sys.executable  # the same interpreter as `stevie`, so the same install
        # Pod-only settings stay in the pod: a local run keeps the user's HOME, and serves
        # metrics only if the user's own environment asks for it (no port clashes).
        local = {k: v for k, v in env.items() if k not in _POD_ONLY}
        child_env = os.environ | local
        self.name = job["metadata"]["name"]
        self.started = datetime.now(UTC)
        self.proc = subprocess.Popen(argv, env=child_env)

    def job(self) -> dict[str, Any] | None:
        """The subprocess as a batch/v1 Job object (what the reconciler observes)."""
        if self.proc is None or self.name is None:
            return None
        started = self.started.isoformat() if self.started else None
        code = self.proc.poll()
        status: dict[str, Any] = {"startTime": started}
        if code is None:
            status["active"] = 1
        elif code == 0:
            status["succeeded"] = 1
            status["conditions"] = [{"type": "Complete", "status": "True"}]
        else:
            status["failed"] = 1
            status["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "TrainerExited",
                    "message": f"the trainer exited with code {code}",
                }
            ]
        return {"metadata": {"name": self.name}, "status": status}

    @property
    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_training_run(
    resource: dict[str, Any],
    config: OperatorConfig,
    *,
    poll_seconds: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Reconcile one TrainingRun to completion with local subprocesses; return it with status."""
    launcher = LocalLauncher()
    uri = run_location(resource, config)
    # A finished run is reported as it is; an unfinished one continues (the trainer resumes).
    resource.setdefault("status", {})
    try:
        while True:
            observed = Observed(
                now=datetime.now(UTC),
                job=launcher.job(),
                progress=read_json(storage.join(uri, "progress.json")) if uri else None,
                result=read_json(storage.join(uri, "result.json"))
                if uri and launcher.finished
                else None,
            )
            plan: Plan = reconcile_training_run(resource, observed, config)
            resource["status"] = plan.status
            for event in plan.events:
                say(f"{event.type:7s} {event.reason}: {event.message}")
            if plan.job is not None and launcher.proc is None:
                # Always start it: a finished run's trainer says so and exits 0 at once, an
                # interrupted one resumes from its last checkpoint.
                launcher.start(plan.job)
                continue
            if plan.phase in ("Succeeded", "Failed"):
                return resource
            if launcher.proc is None and plan.job is None:
                return resource  # nothing to run (e.g. invalid spec): the status says why
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        launcher.stop()
        raise


def run_file(path: Path, data_dir: Path, *, say: Callable[[str], None] = print) -> int:
    """``stevie run``: every resource in ``path``; exit code 0 when all succeeded."""
    resources = load_resources(path)  # validates first: a bad file runs nothing
    config = OperatorConfig(storage_uri=data_dir.resolve().as_uri())
    failed = 0
    for res in resources:
        if isinstance(res, HPOStudy):
            from stevie_operator.local_hpo import run_hpo_study

            done = run_hpo_study(res, data_dir, say=say)
        elif isinstance(res, PBTPopulation):
            from stevie_operator.local_pbt import run_pbt_population

            done = run_pbt_population(res, data_dir, say=say)
        elif isinstance(res, TrainingRun):
            doc = res.model_dump(by_alias=True, exclude_none=True, mode="json")
            doc["metadata"].setdefault("namespace", "default")
            doc["metadata"].setdefault("generation", 1)
            say(f"TrainingRun/{res.metadata.name}: artifacts in {run_location(doc, config)}")
            done = run_training_run(doc, config, say=say)
        else:
            raise ValueError(
                f"{path}: {res.kind}/{res.metadata.name}: `stevie run` runs TrainingRuns, "
                f"HPOStudies and PBTPopulations so far; {res.kind} is not supported yet"
            )
        print(yaml.safe_dump(done, sort_keys=False), end="")
        failed += done.get("status", {}).get("phase") != "Succeeded"
    return 1 if failed else 0
