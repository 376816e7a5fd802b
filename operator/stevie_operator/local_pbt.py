"""``stevie run`` of a PBTPopulation: the PBT controller step with local trainer processes.

One ``python -m stevie_trainer pbt-interval`` process per member interval (at most
``parallelism`` at once), the state in ``<data dir>/<ns>/pbtpopulations/<name>/population.json``
saved before every launch, and ``pbt-finish`` at the end (summary, plots, the best member's
test backtest). Ctrl-C stops the processes; running the same file again continues the
population: finished intervals are kept, running ones are started again.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from stevie_api.pbt import PBTPopulation, PBTPopulationSpec
from stevie_operator.pbt_control import (
    SPEC_NAME,
    SUMMARY_NAME,
    Outcome,
    apply_outcome,
    decide,
    finish_args,
    interval_args,
    interval_uri,
    load_state,
    population_status,
    save_state,
)
from stevie_operator.status import Event
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.pbt.evolution import new_population
from stevie_trainer.pbt.state import Action, Population, running_actions

__all__ = ["PopulationConflictError", "run_pbt_population"]


class PopulationConflictError(ValueError):
    """The folder holds a population of another spec (refused: never overwrite work)."""


@dataclass
class _Child:
    action: Action
    proc: BaseProcess
    started: float


def _interval_process(argv: list[str], log: str) -> None:
    """Body of a forked interval process: the trainer's command line, output to its log.
    SIGINT was blocked around the fork: unblocked only once output goes to the log."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        from stevie_trainer.__main__ import main

        code = main(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


class _Children:
    """The running interval processes, their logs under ``<pop dir>/logs``.

    Each interval is its own process (a crash or leak ends with it), forked from this one
    after torch, Stable-Baselines3 and the template's data are loaded once (:meth:`warm`):
    a fresh ``python -m stevie_trainer pbt-interval`` spends several seconds importing
    before it trains (what a cluster Job pays), which would dominate short intervals.
    """

    def __init__(
        self, spec: PBTPopulationSpec, spec_uri: str, pop_dir: Path, *, fresh: bool = False
    ) -> None:
        self.spec = spec
        self.spec_uri = spec_uri
        self.pop_dir = pop_dir
        self.running: dict[str, _Child] = {}
        self.fresh = fresh
        self.context: SpawnContext | ForkContext = (
            multiprocessing.get_context("spawn") if fresh else multiprocessing.get_context("fork")
        )

    def warm(self) -> None:
        """Import what every interval imports and prepare the template's data, once (not
        with ``fresh`` processes: each starts a new interpreter, as a cluster Job does)."""
        if self.fresh:
            return
        from stevie_trainer.pbt.member import warm_up

        warm_up(self.spec)

    def start(self, action: Action) -> None:
        assert action.name is not None
        if action.name in self.running:
            return
        logs = self.pop_dir / "logs"
        logs.mkdir(exist_ok=True)
        argv = interval_args(self.spec_uri, str(self.pop_dir), action)
        proc = self.context.Process(
            target=_interval_process, args=(argv, str(logs / f"{action.name}.log"))
        )
        # A Ctrl-C that lands inside fork() would be raised in an at-fork handler, where
        # Python prints and swallows it; blocked for the fork, it is raised just after.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.running[action.name] = _Child(action, proc, time.monotonic())

    def ended(self) -> list[Outcome]:
        """Outcomes of the processes that exited since the last call."""
        found = []
        for name, child in list(self.running.items()):
            code = child.proc.exitcode
            if code is None:
                continue
            del self.running[name]
            a = child.action
            assert a.member is not None and a.interval is not None
            result = RunStore(interval_uri(str(self.pop_dir), a.member, a.interval)).read_json(
                "result.json"
            )
            found.append(
                Outcome(
                    name=name,
                    member=a.member,
                    interval=a.interval,
                    succeeded=code == 0,
                    result=result,
                    message=f"exit code {code}; log {self.pop_dir / 'logs' / (name + '.log')}",
                    seconds=time.monotonic() - child.started,
                )
            )
        return found

    def wait(self, timeout: float) -> None:
        """Until a child exits (or ``timeout`` seconds): no polling latency per interval."""
        sentinels = [c.proc.sentinel for c in self.running.values()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout)
        else:
            time.sleep(timeout)

    def stop(self) -> None:
        for child in self.running.values():
            if child.proc.is_alive():
                child.proc.terminate()
        for child in self.running.values():
            child.proc.join()


def _open(resource: PBTPopulation, pop_dir: Path) -> tuple[Population, dict[str, float]]:
    """The saved population, or a new one; the spec file is written (or checked) first."""
    doc = resource.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc.pop("status", None)
    spec_file = pop_dir / SPEC_NAME
    if spec_file.exists():
        theirs = json.loads(spec_file.read_text()).get("spec")
        if theirs != doc["spec"]:
            raise PopulationConflictError(
                f"{pop_dir} holds a population of a different spec; delete that folder to "
                "start over, or rename the PBTPopulation"
            )
    else:
        spec_file.write_text(json.dumps(doc, indent=2) + "\n")
    saved = load_state(str(pop_dir))
    if saved is not None:
        return saved
    spec = resource.spec
    rng = np.random.default_rng([spec.template.seed, spec.population_size])
    return new_population(resource.metadata.name, spec, rng), {}


def _progress(pop: Population, target: int) -> str:
    best = max((f for m in pop.members for f in m.fitness_history), default=None)
    running = sum(m.status == "running" for m in pop.members)
    return (
        f"intervals {pop.intervals_completed}/{target}, {running} running, "
        f"{pop.exploits} exploits, best fitness " + ("n/a" if best is None else f"{best:.4f}")
    )


def run_pbt_population(
    resource: PBTPopulation,
    data_dir: Path,
    *,
    poll_seconds: float = 0.5,
    say: Callable[[str], None] = print,
    fresh_processes: bool = False,
) -> dict[str, Any]:
    """Run the population to its end with local processes; return the resource with status.
    ``fresh_processes``: start each interval in a new interpreter (what a Job pays) instead
    of forking a warmed-up one (benchmarks compare the two)."""
    spec = resource.spec
    name = resource.metadata.name
    namespace = resource.metadata.namespace or "default"
    pop_dir = (data_dir / namespace / "pbtpopulations" / name).resolve()
    pop_dir.mkdir(parents=True, exist_ok=True)
    population, seconds = _open(resource, pop_dir)
    children = _Children(spec, str(pop_dir / SPEC_NAME), pop_dir, fresh=fresh_processes)
    children.warm()
    started = datetime.now(UTC)
    target = spec.population_size * spec.stopping.max_intervals
    say(f"PBTPopulation/{name}: {spec.population_size} members x {spec.stopping.max_intervals} "
        f"intervals of {spec.perturbation_interval:,} steps ({spec.mode}); state and logs in "
        f"{pop_dir}")  # fmt: skip

    def show(events: list[Event]) -> None:
        for event in events:
            say(f"{event.type:7s} {event.reason}: {event.message}")

    for action in running_actions(population):  # after an interruption: start them again
        children.start(action)
    last = ""
    final: str | None = None
    try:
        while final is None:
            events: list[Event] = []
            for outcome in children.ended():
                events += apply_outcome(population, spec, outcome, seconds)
            actions, decided = decide(population, spec)
            save_state(str(pop_dir), population, seconds)
            show(events + decided)
            for action in actions:
                if action.kind == "launch":
                    children.start(action)
                else:
                    final = action.kind
            line = _progress(population, target)
            if line != last:
                say(line)
                last = line
            if final is None:
                children.wait(poll_seconds)
    except KeyboardInterrupt:
        children.stop()
        raise
    summary = _finish(pop_dir, say) if population.intervals_completed else None
    status = population_status(
        population, summary, start_time=started, completion_time=datetime.now(UTC)
    )
    ok = status.phase == "Succeeded"
    reason = "PopulationSucceeded" if ok else "AllMembersFailed"
    status.message = _progress(population, target)
    status.observed_generation = resource.metadata.generation or 1
    for type_, value in (("Ready", ok), ("Succeeded", ok), ("Failed", not ok)):
        status.set_condition(type_, "True" if value else "False", reason, status.message)
    status.set_condition("Progressing", "False", reason, status.message)
    status.set_condition("Degraded", "False" if ok else "True", reason, status.message)
    doc = resource.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return doc


def _finish(pop_dir: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    """``pbt-finish`` in a child process (its table goes to the terminal)."""
    say("writing pbt_summary.json, plots and the best member's test backtest")
    cmd = [sys.executable, "-m", "stevie_trainer"]
    cmd += finish_args(str(pop_dir / SPEC_NAME), str(pop_dir))
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.stdout.strip():
        say(done.stdout.rstrip())
    summary = RunStore(str(pop_dir)).read_json(SUMMARY_NAME)
    if done.returncode != 0 or summary is None:
        for line in done.stderr.strip().splitlines()[-5:]:
            say(line)
        say(f"pbt-finish failed (exit code {done.returncode}); the state is in {pop_dir}")
        return None
    summary["uri"] = str(pop_dir / SUMMARY_NAME)
    say(f"summary: {summary['uri']}")
    return summary
