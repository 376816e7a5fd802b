"""S3 (moto) stopped for 60 s while a TrainingRun and a PBTPopulation run on it, then started
again on the same port with the same objects: both finish with what they were asked for and
nothing lost or counted twice, the operator says the storage is unavailable while it is
(the PBTPopulation's state cannot be read: Degraded StorageUnavailable) and stops saying it
after, and nothing crash-loops (kopf handler errors, Jobs failed for good).

The operator is ``stevie operator`` in a child process against kmock; the kubelet runs the
Jobs as trainer processes (with the Jobs' environment) and would replace a failed pod after
the Job controller's backoff (10 s, doubling), within the Job's backoffLimit (3). A trainer
pod of s3:// artifacts keeps retrying an unreachable endpoint for up to
STEVIE_S3_OUTAGE_SECONDS (300, set by the operator in its Job), so no pod fails: each waits
the outage out and goes on (before that budget, each exited 1 within ~2 s and a 60 s outage
used up three of the four pods a Job may have).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from stevie_api import GROUP, VERSION
from stevie_trainer.common import storage
from support.chaos import (
    OperatorProcess,
    RetryingKubelet,
    S3Endpoint,
    check_population,
    finished,
)
from support.kmock import Cluster, wait_for
from support.specs import pbt_population, template

API = f"/apis/{GROUP}/{VERSION}/namespaces/default"
RUN, POP = "chaos-s3-run", "chaos-s3-pop"
STEPS, EVAL_FREQ = 6144, 2048
OUTAGE = 60.0
MEMBERS, INTERVALS, INTERVAL_STEPS = 2, 1, 256


def resources(bucket: str) -> dict[str, dict[str, Any]]:
    """A TrainingRun of 6144 steps checkpointed every 1024 (a few seconds of training) and a
    population of 2 members x 1 interval, both on s3://."""
    run = template(totalTimesteps=STEPS, evaluation={"evalFreq": EVAL_FREQ},
                   checkpoint={"intervalSteps": 1024},
                   storage={"uri": f"s3://{bucket}/runs"})  # fmt: skip
    pop = pbt_population(POP, template=template(storage={"uri": f"s3://{bucket}/pbt"}),
                         populationSize=MEMBERS, perturbationInterval=INTERVAL_STEPS,
                         quantileFraction=0.5, stopping={"maxIntervals": INTERVALS})  # fmt: skip
    tr = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
          "metadata": {"name": RUN}, "spec": run}  # fmt: skip
    return {"trainingruns": tr, "pbtpopulations": pop}


def degraded(cluster: Cluster, path: str) -> str | None:
    """The reason of the object's Degraded condition while True, else None."""
    status = (cluster.api("GET", path) or {}).get("status") or {}
    found = [c for c in status.get("conditions") or [] if c.get("type") == "Degraded"]
    return found[0]["reason"] if found and found[0]["status"] == "True" else None


def checkpointed(s3: Any, bucket: str) -> bool:
    """The TrainingRun has a complete checkpoint, and is still training."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/").get("Contents", [])]
    return any(k.endswith("state.json") and "/checkpoints/" in k for k in keys) and not any(
        k.endswith("/result.json") for k in keys
    )


def watch(cluster: Cluster, paths: dict[str, str], seconds: float) -> dict[str, Counter[str]]:
    """Poll the objects for ``seconds``: how often each showed each Degraded reason."""
    seen: dict[str, Counter[str]] = {name: Counter() for name in paths}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, path in paths.items():
            if (reason := degraded(cluster, path)) is not None:
                seen[name][reason] += 1
        time.sleep(0.5)
    return seen


@pytest.mark.slow
def test_a_60_s_s3_outage_loses_nothing_and_the_operator_says_so(
    cluster: Cluster, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = S3Endpoint()
    endpoint.start()  # moto's backend is per process: it serves s3_server's bucket too
    monkeypatch.setenv("STEVIE_S3_ENDPOINT_URL", endpoint.url)  # operator, pods and this test
    storage.clear_s3_clients()
    docs = resources(s3_server.bucket)
    paths = {d["metadata"]["name"]: f"{API}/{plural}/{d['metadata']['name']}"
             for plural, d in docs.items()}  # fmt: skip
    operator = OperatorProcess(tmp_path / "operator")
    kubelet = RetryingKubelet(cluster, tmp_path / "pods")
    t0 = time.monotonic()
    try:
        with kubelet, operator:
            for plural, doc in docs.items():
                cluster.api("POST", f"{API}/{plural}", doc)
            wait_for(lambda: checkpointed(s3_server.client, s3_server.bucket), 120, "a checkpoint")
            endpoint.stop()
            down = time.monotonic()
            during = watch(cluster, paths, OUTAGE)
            endpoint.start()
            back = time.monotonic()
            wait_for(lambda: degraded(cluster, paths[POP]) is None, 60, "Degraded to clear")
            cleared = time.monotonic() - back
            done = {n: wait_for(partial(finished, cluster, p), 300, n) for n, p in paths.items()}
            recovered = time.monotonic() - back
            cluster.settle(timeout=20)
    finally:
        operator.stop()
        endpoint.stop()
    total = time.monotonic() - t0
    monkeypatch.setenv("STEVIE_S3_ENDPOINT_URL", s3_server.endpoint_url)  # the same objects
    storage.clear_s3_clients()
    run = done[RUN]
    result_doc = json.loads(storage.read_text(run["artifacts"]["result"]))
    evaluations = [e["timesteps"] for e in result_doc["evaluations"]]
    pods = {n: j.codes for n, j in kubelet.jobs.items()}
    starts = {n: [round(t - down) for t in j.starts] for n, j in kubelet.jobs.items()}
    print(f"\nS3 outage {OUTAGE:.0f} s: Degraded seen during it {dict(during)}; Degraded cleared "
          f"{cleared:.1f} s after S3 came back; both finished {recovered:.1f} s after; "
          f"pod exit codes per Job {pods}, pods started at (s from the outage) {starts}; "
          f"TrainingRun {run['progress']} resumed from "
          f"{result_doc['resumed_from']}, evaluations at {evaluations}, validation Sharpe "
          f"{(run.get('validation') or {}).get('sharpe')}; handler errors "
          f"{operator.handler_errors()}; total {total:.1f} s")  # fmt: skip
    pop_uri = storage.join(f"s3://{s3_server.bucket}/pbt", "default", "pbtpopulations", POP,
                           (cluster.api("GET", paths[POP]) or {})["metadata"]["uid"])  # fmt: skip
    figures = check_population(cluster, kubelet, POP, pop_uri, MEMBERS, INTERVALS,
                               INTERVAL_STEPS)  # fmt: skip
    print(f"population: {figures}")
    assert {n: s["phase"] for n, s in done.items()} == {RUN: "Succeeded", POP: "Succeeded"}
    assert all(codes == [0] for codes in pods.values()), pods  # every pod rode it out
    assert run["progress"]["timesteps"] == STEPS == result_doc["timesteps"]
    assert evaluations == sorted(set(evaluations)) and evaluations[-1] == STEPS  # none twice
    assert run.get("validation") and run.get("test")
    assert "StorageUnavailable" in during[POP]
    assert all(degraded(cluster, path) is None for path in paths.values())  # cleared after
    assert set(figures["posts"].values()) == {1}, figures
    assert operator.handler_errors() == 0
