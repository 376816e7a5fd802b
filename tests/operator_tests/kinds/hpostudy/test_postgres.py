"""An HPOStudy on an RDB: several trial processes sharing one PostgreSQL URL.

A throwaway PostgreSQL cluster is started from the server binaries (Debian's ``postgresql``
package: .ci/run installs it) for the session; the tests skip, saying why, when the binaries
or the psycopg driver are missing (and fail instead where $STEVIE_REQUIRE_POSTGRES is set, as
in CI). SQLAlchemy 2.1 (Optuna's RDBStorage) opens a bare
``postgresql://`` URL with psycopg 3, so that is the driver the ``dev`` extra installs.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from stevie_api.hpo import HPOStudy, HPOStudySpec
from stevie_api.loader import load_resources
from stevie_operator.framework.artifacts import local_uid
from stevie_operator.local.launcher import LocalLauncher
from stevie_operator.local.runner import run_resources
from stevie_operator.registry import KINDS
from stevie_trainer.hpo.study import open_study
from support.postgres import REQUIRE_ENV, postgres_database, unavailable
from support.specs import hpo_study

PASSWORD = "s3cret-pw"

STUDY = yaml.safe_dump(
    hpo_study("pg-hpo", significance={"enabled": False}, storage={"urlSecretRef": "stevie-hpo-db"}),
    sort_keys=False,
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a database on a throwaway PostgreSQL cluster (see :mod:`support.postgres`)."""
    with postgres_database(PASSWORD) as url:
        yield url


# --- tests ---------------------------------------------------------------------------------
def test_missing_postgres_skips_for_a_developer_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        unavailable("no initdb")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"required \\(\\${REQUIRE_ENV} is set\\)"):
        unavailable("no initdb")


def _study_file(tmp_path: Path) -> Path:
    file = tmp_path / "study.yaml"
    file.write_text(STUDY)
    (resource,) = load_resources(file)
    assert isinstance(resource, HPOStudy)
    return file


def _spec(**changes: Any) -> HPOStudySpec:
    doc = yaml.safe_load(STUDY)["spec"]
    doc.update(changes)
    return HPOStudySpec.model_validate(doc, by_alias=True, by_name=False)


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from stevie_api.hpo import HPOStudySpec
    from stevie_trainer.hpo.study import ask_trials, open_study, tell_trial

    spec = HPOStudySpec.model_validate(json.loads(sys.argv[1]), by_alias=True, by_name=False)
    worker, n, gate = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    study = open_study(spec, "concurrent", os.environ["STEVIE_HPO_STORAGE"], create=False)
    (gate / worker).touch()  # start together: wait until both workers opened the study
    while len(list(gate.iterdir())) < 2:
        time.sleep(0.01)
    for _ in range(n):
        (asked,) = ask_trials(study, spec, 1, "concurrent")
        study._storage.set_trial_user_attr(
            study.get_trials(deepcopy=False)[asked.number]._trial_id, "worker", worker
        )
        time.sleep(0.02)
        tell_trial(study, asked.number, [asked.params["gamma"]])
    """
)


def test_two_processes_ask_and_tell_on_one_postgres_study(
    postgres_url: str, tmp_path: Path
) -> None:
    spec = _spec()
    open_study(spec, "concurrent", postgres_url)  # the controller creates it
    doc = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    env = {**os.environ, "STEVIE_HPO_STORAGE": postgres_url}
    gate = tmp_path / "gate"
    gate.mkdir()
    per_worker = 12
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(doc), str(w), str(per_worker), str(gate)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    trials = optuna.load_study(study_name="concurrent", storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(2 * per_worker))  # no duplicates
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(t.values == [t.params["gamma"]] for t in trials)
    by_worker = [t.user_attrs["worker"] for t in sorted(trials, key=lambda t: t.number)]
    assert by_worker.count("0") == by_worker.count("1") == per_worker
    # The two workers' trials interleave: both processes used the study at the same time.
    assert sum(a != b for a, b in itertools.pairwise(by_worker)) >= 2, by_worker


def test_stevie_run_with_url_secret_ref_needs_the_env_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEVIE_HPO_STORAGE", raising=False)
    file = _study_file(tmp_path)
    with pytest.raises(ValueError, match=r"set STEVIE_HPO_STORAGE to the RDB URL") as err:
        run_resources(load_resources(file), tmp_path / "runs", KINDS, say=lambda _: None)
    assert "\n" not in str(err.value) and "stevie-hpo-db" in str(err.value)
    assert not list((tmp_path / "runs").rglob("*.journal"))


@pytest.mark.slow
def test_stevie_run_of_a_study_on_postgres_with_parallel_trials(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEVIE_HPO_STORAGE", postgres_url)
    argv: list[list[str]] = []
    spawn = LocalLauncher._spawn

    def recording_spawn(
        cmd: list[str], env: dict[str, str], log: Path | None
    ) -> subprocess.Popen[bytes]:
        argv.append([str(a) for a in cmd])
        return spawn(cmd, env, log)

    monkeypatch.setattr(LocalLauncher, "_spawn", staticmethod(recording_spawn))
    said: list[str] = []
    data = tmp_path / "runs"
    file = _study_file(tmp_path)
    (doc,) = run_resources(load_resources(file), data, KINDS, say=said.append, poll_seconds=0.2)

    status = doc["status"]
    assert status["phase"] == "Succeeded", status
    assert status["trials"]["completed"] + status["trials"]["pruned"] == 4
    assert status["trials"]["failed"] == 0
    # The URL reached the trials through the environment: the password is in no argv, and
    # the controller did not print it.
    trial_argv = [cmd for cmd in argv if "trial" in cmd]
    assert len(trial_argv) == 4 and not any(PASSWORD in " ".join(cmd) for cmd in argv)
    assert not any(PASSWORD in line for line in said)
    assert any("127.0.0.1" in line and "stevie_hpo" in line for line in said)
    # All four trials are in PostgreSQL, and two of them ran at the same time.
    uid = local_uid("HPOStudy", "default", "pg-hpo")  # ``stevie run``'s, the same every run
    name = f"default.pg-hpo.{uid}"  # in an RDB the study is keyed by the object
    trials = optuna.load_study(study_name=name, storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert all(begin is not None and end is not None for begin, end in spans)
    assert any(
        b[0] < a[1]  # type: ignore[operator]
        for a, b in itertools.pairwise(spans)
    )
    # No JournalStorage file anywhere: the RDB was the only storage.
    assert not list(data.rglob("*.journal"))
    assert (data / "default" / "hpostudies" / "pg-hpo" / uid / "optimization_report.txt").is_file()
