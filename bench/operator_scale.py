"""Operator cost at scale, against kmock: RSS, reconcile latency, API calls per reconcile.

Three scenarios, each with a fresh kmock (tests/support/kmock.py, in this process) and a
fresh operator in a child process (every kind's handlers, kopf's default settings plus the
operator's own startup handler, as ``stevie operator`` runs it), so the operator's RSS is its
own and kmock does not share its interpreter lock:

- ``runs``: ``--runs`` (1,000) TrainingRuns created at once; each Job gets a Running pod;
  once every run is Running, ``--steady`` s (60) with nothing happening but the timers; then
  every Job completes (result.json written, pod Succeeded, Job Complete);
- ``hpo``: one HPOStudy of ``--trials`` (1,000) trials, ``--parallelism`` (50) at once: the
  bench plays the trial workers (it tells the Optuna journal the trial's value, as
  ``stevie_trainer trial`` does) and the kubelet (pod Running, then Job Complete), then the
  finish Job (the report files);
- ``pbt``: one PBTPopulation of ``--members`` (128) members, all at once, ``--intervals`` (3)
  intervals each: the bench writes each interval's result.json where its Job's ``--out``
  points, then completes the Job; then the finish Job (pbt_summary.json).

Measured: the operator's RSS (VmRSS from /proc: after start-up, the peak VmHWM, and the
growth), reconcile durations (the operator's own timing of ``drive`` -- what its histogram
``stevie_operator_reconcile_duration_seconds`` observes -- read exactly, p50 / p99, overall
and for the runs' steady window), the operator's API calls (kmock's record, by user agent:
everything but this bench's urllib; watch streams not counted) per reconcile, the timers'
reconcile rate and the operator's CPU in the steady window, and wall time. Targets: RSS <=
250 MiB, reconcile p99 <= 200 ms.

    python bench/operator_scale.py [--runs 1000 --trials 1000 --members 128] [--quick]
        [--scenarios runs,hpo,pbt] [--interval S] [--steady 60]

``--interval`` sets STEVIE_RECONCILE_INTERVAL (default: the tree's own default). To compare
two source trees, run the bench once per tree with PYTHONPATH=<tree>/api:<tree>/trainer:
<tree>/operator (the child inherits it). The harness (kmock's tweaks, the operator's child
process, what is measured of it) is ``bench/_scale_harness.py``; this file has the scenarios
and the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# The harness by its package name (bench/ has no __init__: a namespace package), as mypy's
# explicit package bases name it too; running this file puts only bench/ itself on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scale_harness import (
    API,
    Scenario,
    World,
    arg,
    child,
    cpu_seconds,
    local,
    measure,
    phases,
    until,
    write,
)

MIB = 1024 * 1024


# --- the scenarios -------------------------------------------------------------------------


def runs(world: World, opts: argparse.Namespace) -> tuple[float, float, float]:
    """N TrainingRuns; the steady window (all Running, only timers) is returned."""
    from support.specs import template

    begun = time.monotonic()
    for i in range(opts.runs):
        doc = {
            "apiVersion": "stevie.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": f"run-{i:04d}"},
            "spec": template(),
        }
        world.api("POST", f"{API}/trainingruns", doc)

    def all_running() -> bool:
        world.tend(None)
        return bool(phases(world, "trainingruns")["Running"] == opts.runs)

    until("every run Running", all_running, opts.timeout)
    print(f"  every run Running after {time.monotonic() - begun:.1f} s", flush=True)
    start, cpu = time.time(), cpu_seconds(world.pid)
    time.sleep(opts.steady)
    window = (start, time.time(), cpu_seconds(world.pid) - cpu)

    def result(name: str, job: dict[str, Any]) -> bool:
        write(
            arg(job, "--out"),
            "result.json",
            {
                "status": "succeeded",
                "timesteps": 1024,
                "validation": {"sharpe": 1.0},
                "test": {"agent": {"sharpe": 0.5}},
            },
        )
        return True

    def all_done() -> bool:
        world.tend(result)
        return bool(phases(world, "trainingruns")["Succeeded"] == opts.runs)

    until("every run Succeeded", all_done, opts.timeout)
    return window


def hpo(world: World, opts: argparse.Namespace) -> None:
    """One study of N trials; the bench tells the journal each trial's value."""
    import optuna

    from stevie_trainer.hpo.study import open_storage
    from support.specs import hpo_study

    doc = hpo_study(
        "scale",
        maxTrials=opts.trials,
        parallelism=opts.parallelism,
        sampler=opts.sampler,
        significance={"enabled": False},
        maxFailedTrials=0,
    )
    world.api("POST", f"{API}/hpostudies", doc)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies: list[optuna.Study] = []  # opened at the first trial (the journal is in its args)

    def trial(name: str, job: dict[str, Any]) -> bool:
        if name.startswith("scale-finish"):
            folder = local(arg(job, "--out"))
            (folder / "optimization_results.json").write_text("{}")
            (folder / "optimization_report.txt").write_text("report\n")
            return True
        if not studies:
            storage = open_storage(str(local(arg(job, "--storage"))))
            studies.append(optuna.load_study(study_name="scale", storage=storage))
        number = int(name.rsplit("-t", 1)[1])
        studies[0].tell(number, (number * 7919 % 1000) / 1000)
        return True

    def succeeded() -> bool:
        world.tend(trial)
        return bool(phases(world, "hpostudies")["Succeeded"] == 1)

    until("the study Succeeded", succeeded, opts.timeout, every=0.3)


def pbt(world: World, opts: argparse.Namespace) -> None:
    """One population of N members, all training at once."""
    from support.specs import pbt_population

    doc = pbt_population(
        "scale",
        populationSize=opts.members,
        parallelism=opts.members,
        quantileFraction=0.25,
        stopping={"maxIntervals": opts.intervals},
    )
    world.api("POST", f"{API}/pbtpopulations", doc)

    def interval(name: str, job: dict[str, Any]) -> bool:
        if name == "scale-finish":
            folder = local(arg(job, "--population-spec")).parent
            summary = {"best": {"member": 0, "interval": 1, "fitness": 0.4}}
            (folder / "pbt_summary.json").write_text(json.dumps(summary))
            return True
        member = int(arg(job, "--member"))
        out = arg(job, "--out")
        fitness = ((member * 7919) % 101) / 100 + 0.01 * int(arg(job, "--interval"))
        write(out, "result.json", {"status": "succeeded", "fitness": fitness, "checkpoint": out})
        return True

    def succeeded() -> bool:
        world.tend(interval)
        return bool(phases(world, "pbtpopulations")["Succeeded"] == 1)

    until("the population Succeeded", succeeded, opts.timeout, every=0.3)


SCENARIOS: dict[str, Scenario] = {
    "runs": runs,
    "hpo": hpo,
    "pbt": pbt,
}


def report(rows: list[dict[str, Any]], opts: argparse.Namespace) -> None:
    print(
        f"\n{'scenario':9} {'wall s':>7} {'RSS start':>9} {'peak':>6} {'growth':>6} "
        f"{'reconciles':>10} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'calls/rec':>9}"
    )
    for r in rows:
        total = sum(r["calls"].values())
        print(
            f"{r['scenario']:9} {r['wall']:7.1f} {r['rss_start'] / MIB:7.0f}Mi "
            f"{r['rss_peak'] / MIB:4.0f}Mi {(r['rss_peak'] - r['rss_start']) / MIB:4.0f}Mi "
            f"{r['reconciles']:10d} {r['p50'] * 1e3:7.1f} {r['p99'] * 1e3:7.1f} "
            f"{r['max'] * 1e3:7.0f} {total / max(1, r['reconciles']):9.2f}"
        )
    for r in rows:
        per = max(1, r["reconciles"])
        calls = ", ".join(f"{k} {v / per:.2f}" for k, v in r["calls"].most_common())
        print(f"\n{r['scenario']}: API calls per reconcile: {calls}")
        if "steady_rate" in r:
            print(
                f"{r['scenario']}: steady window ({opts.steady:.0f} s, every run Running, "
                f"timers only): {r['steady_rate']:.1f} reconciles/s, p50 "
                f"{r['steady_p50'] * 1e3:.1f} ms, p99 {r['steady_p99'] * 1e3:.1f} ms, operator CPU "
                f"{r['steady_cpu'] * 100:.0f}% of a core"
            )
    worst_rss = max(r["rss_peak"] for r in rows) / MIB
    worst_p99 = max(r["p99"] for r in rows) * 1e3
    rss_ok, p99_ok = ("ok" if ok else "MISSED" for ok in (worst_rss <= 250, worst_p99 <= 200))
    print(
        f"\ntargets: RSS peak {worst_rss:.0f} MiB (<= 250: {rss_ok}), "
        f"reconcile p99 {worst_p99:.0f} ms (<= 200: {p99_ok})"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:  # the harness runs itself as the child; kept for callers
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--sampler", default="random", help="the study's sampler (random)")
    parser.add_argument("--members", type=int, default=128)
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--scenarios", default="runs,hpo,pbt")
    parser.add_argument("--quick", action="store_true", help="100 runs, 100 trials, 16 members")
    opts = parser.parse_args()
    if opts.quick:
        opts.runs, opts.trials, opts.members, opts.steady = 100, 100, 16, 10.0
        opts.parallelism = min(opts.parallelism, 20)
    rows = []
    for name in opts.scenarios.split(","):
        print(f"{name}...", flush=True)
        rows.append(measure(name, SCENARIOS[name], opts))
    report(rows, opts)


if __name__ == "__main__":
    main()
