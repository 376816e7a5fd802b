"""HPOStudy end to end: the real operator (kopf in a thread) against kmock (support/kmock.py).

Nothing trains: the test plays the trial workers (telling the Optuna study, as
``stevie_trainer trial`` would) and the kubelet (patching Job status), and writes the finish
Job's files itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from stevie_trainer.hpo.study import open_storage
from support.jobs import done, failed
from support.kmock import (
    JOBS,
    Cluster,
    conditions,
    handled,
    operator,
    wait_for,
)
from support.specs import hpo_study, template

HPO = "/apis/stevie.dev/v1alpha1/namespaces/default/hpostudies"
SECRETS = "/api/v1/namespaces/default/secrets"
STUDY = hpo_study(
    "hpo", maxFailedTrials=2, template=template(resources={"cpu": "1", "memory": "1Gi"})
)
STUDY["metadata"]["namespace"] = "default"
FAILED = failed()
DONE = done()


def job(cluster: Cluster, name: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: cluster.api("GET", f"{JOBS}/{name}")


def status(cluster: Cluster, check: Callable[[dict[str, Any]], bool]) -> Callable[[], Any]:
    def fetch() -> dict[str, Any] | None:
        found = (cluster.api("GET", f"{HPO}/hpo") or {}).get("status") or {}
        return found if found and check(found) else None

    return fetch


def study(folder: Path) -> optuna.Study:
    storage = open_storage(str(folder / "optuna.journal"))
    return optuna.load_study(study_name="hpo", storage=storage)


def finish_trial(cluster: Cluster, folder: Path, number: int, value: float) -> None:
    """A worker tells the study its trial's value and exits 0."""
    study(folder).tell(number, value)
    cluster.api("PATCH", f"{JOBS}/hpo-t{number}/status", {"status": DONE})


def _first_trials_jobs(cluster: Cluster, folder: Path, created: dict[str, Any]) -> None:
    """Two trial Jobs (parallelism 2): the trainer's trial command on the shared journal."""
    uri = folder.as_uri()
    t0, t1 = (wait_for(job(cluster, f"hpo-t{n}"), what=f"trial {n}") for n in (0, 1))
    container = t1["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "--study-spec", f"{uri}/study.json", "--storage", f"{uri}/optuna.journal",
        "--trial-number", "1", "--out", f"{uri}/hpo-t1",
    ]  # fmt: skip
    assert container["command"] == ["python", "-m", "stevie_trainer", "trial"]
    assert {"name": "STEVIE_RUN_URI", "value": f"{uri}/hpo-t1"} in container["env"]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert t0["metadata"]["labels"]["stevie.dev/kind"] == "HPOStudy"
    assert t0["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert json.loads((folder / "study.json").read_text())["spec"]["maxTrials"] == 4
    wait_for(status(cluster, lambda s: s.get("phase") == "Running"), what="Running")
    assert cluster.api("GET", f"{JOBS}/hpo-t2") is None  # parallelism 2


def _a_dead_pod_fails_its_trial_and_is_replaced(cluster: Cluster, folder: Path) -> None:
    cluster.api("PATCH", f"{JOBS}/hpo-t1/status", {"status": FAILED})  # the pod died
    wait_for(job(cluster, "hpo-t3"), what="a replacement for trial 1")
    trial = study(folder).trials[1]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "backoff limit" in trial.user_attrs["error"]
    failed = wait_for(status(cluster, lambda s: s["trials"]["failed"] == 1), what="failed")
    assert failed["trials"]["running"] == 2 and failed["bestTrial"] == 0


def _the_finish_job_reports(cluster: Cluster, folder: Path) -> None:
    """Every trial done: the finish Job, which writes its outputs and exits 0."""
    uri = folder.as_uri()
    finish = wait_for(job(cluster, "hpo-finish-4"), what="the finish Job")
    args = finish["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--study-spec", f"{uri}/study.json", "--storage",
                    f"{uri}/optuna.journal", "--out", uri]  # fmt: skip
    finishing = status(cluster, lambda s: s["conditions"][1]["reason"] == "Finishing")
    assert wait_for(finishing, what="Finishing")["phase"] == "Running"
    (folder / "significance").mkdir()
    sig = {"best_mean": 0.8, "default_mean": 0.2, "p_value": 0.03, "ci_low": 0.1,
           "ci_high": 1.0, "significant": True, "sentence": "best beats default"}  # fmt: skip
    (folder / "significance" / "significance.json").write_text(json.dumps(sig))
    (folder / "optimization_results.json").write_text("{}")
    (folder / "optimization_report.txt").write_text("report\n")
    cluster.api("PATCH", f"{JOBS}/hpo-finish-4/status", {"status": DONE})
    done = wait_for(status(cluster, lambda s: s["phase"] == "Succeeded"), what="Succeeded")
    assert done["trials"] == {"running": 0, "completed": 4, "pruned": 0, "failed": 1}
    assert done["bestTrial"] == 2 and done["bestValue"] == 0.9
    assert done["significance"]["pValue"] == 0.03
    assert done["reportUri"] == f"{uri}/optimization_report.txt"
    assert conditions(done)["Ready"] == ("True", "StudySucceeded")


def test_study_runs_trials_in_parallel_replaces_failures_and_finishes(
    cluster: Cluster, tmp_path: Path
) -> None:
    with operator() as first:
        created = cluster.api("POST", HPO, STUDY)
        # Artifacts are keyed by the object: <name>/<uid>.
        folder = tmp_path / "data" / "default" / "hpostudies" / "hpo" / created["metadata"]["uid"]
        _first_trials_jobs(cluster, folder, created)
        finish_trial(cluster, folder, 0, 0.5)
        wait_for(job(cluster, "hpo-t2"), what="the next trial")
        wait_for(lambda: handled(cluster, f"{HPO}/hpo"), what="the creation handled")
        cluster.settle()
    assert first.exception is None

    # A restarted operator finds the running trials' Jobs: no duplicate, no extra trial.
    with operator() as second:
        _a_dead_pod_fails_its_trial_and_is_replaced(cluster, folder)
        finish_trial(cluster, folder, 2, 0.9)
        finish_trial(cluster, folder, 3, 0.1)
        wait_for(job(cluster, "hpo-t4"), what="the last trial")
        finish_trial(cluster, folder, 4, 0.3)
        _the_finish_job_reports(cluster, folder)
        reasons = wait_for(
            lambda: (
                [e[1] for e in cluster.events("hpo", "HPOStudy")]
                if "StudySucceeded" in [e[1] for e in cluster.events("hpo", "HPOStudy")]
                else None
            ),
            what="StudySucceeded",
        )
        assert reasons.count("NewBestTrial") == 2  # trial 0, then trial 2
        assert reasons.count("TrialStarted") == 5 and reasons.count("TrialFailed") == 1
        assert reasons.count("StudySucceeded") == 1 and reasons.count("Finishing") == 1
        cluster.settle()
    assert second.exception is None
    for name in ("hpo-t0", "hpo-t1", "hpo-t2", "hpo-t3", "hpo-t4", "hpo-finish-4"):
        assert cluster.created(f"jobs/{name}") == 1, name
    assert len(study(folder).trials) == 5


def test_rdb_storage_from_a_secret_and_spec_edits(cluster: Cluster, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    doc = json.loads(json.dumps(STUDY))
    doc["spec"]["storage"] = {"urlSecretRef": "study-db"}
    with operator() as runner:
        uid = cluster.api("POST", HPO, doc)["metadata"]["uid"]
        missing = status(cluster, lambda s: conditions(s)["Degraded"][0] == "True")
        assert "Secret default/study-db" in wait_for(missing, what="Degraded")["message"]
        encoded = base64.b64encode(url.encode()).decode()
        secret = {"metadata": {"name": "study-db"}, "data": {"url": encoded}}
        cluster.api("POST", SECRETS, secret)
        t1 = wait_for(job(cluster, "hpo-t1"), timeout=15, what="trial Jobs (timer)")
        container = t1["spec"]["template"]["spec"]["containers"][0]
        assert "--storage" not in container["args"] and url not in json.dumps(t1)
        assert container["env"][0] == {
            "name": "STEVIE_HPO_STORAGE",
            "valueFrom": {"secretKeyRef": {"name": "study-db", "key": "url"}},
        }
        # In an RDB the study is keyed by the object; the trials open it by that name.
        keyed = f"default.hpo.{uid}"
        assert container["args"][container["args"].index("--optuna-study") + 1] == keyed
        assert len(optuna.load_study(study_name=keyed, storage=url).trials) == 2

        # Raising parallelism launches more trials at once.
        cluster.api("PATCH", f"{HPO}/hpo", {"spec": {"parallelism": 3}})
        wait_for(job(cluster, "hpo-t2"), what="a third parallel trial")
        gen2 = status(cluster, lambda s: s.get("observedGeneration") == 2)
        assert wait_for(gen2, what="generation 2")["trials"]["running"] == 3
        edited = lambda: handled(cluster, f"{HPO}/hpo", '"parallelism":3')  # noqa: E731
        wait_for(edited, what="the edit handled")
        cluster.settle()
    assert runner.exception is None
