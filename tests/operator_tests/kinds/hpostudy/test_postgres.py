"""An HPOStudy on an RDB: several trial processes sharing one PostgreSQL URL.

A throwaway PostgreSQL cluster is started from the server binaries (Debian's ``postgresql``
package: .ci/run installs it) for the session; the tests skip, saying why, when the binaries
or the psycopg driver are missing. SQLAlchemy 2.1 (Optuna's RDBStorage) opens a bare
``postgresql://`` URL with psycopg 3, so that is the driver the ``dev`` extra installs.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from stevie_api.hpo import HPOStudy, HPOStudySpec
from stevie_api.loader import load_resources
from stevie_operator.local.launcher import LocalLauncher
from stevie_operator.local.runner import run_resources
from stevie_operator.registry import KINDS
from stevie_trainer.hpo.study import open_study
from support.specs import hpo_study

PASSWORD = "s3cret-pw"

STUDY = yaml.safe_dump(
    hpo_study("pg-hpo", significance={"enabled": False}, storage={"urlSecretRef": "stevie-hpo-db"}),
    sort_keys=False,
)


# --- a throwaway PostgreSQL cluster --------------------------------------------------------
def _pg_bin() -> Path | None:
    """The folder of initdb/pg_ctl: Debian's /usr/lib/postgresql/N/bin (newest), else PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[4]) if p.parts[4].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql://stevie:PASSWORD@127.0.0.1:PORT/stevie_hpo on a fresh cluster in a temp
    folder (initdb, pg_ctl start; stopped and removed at the end). initdb and postgres refuse
    to run as root: as root they run as the ``postgres`` user, which owns the folder."""
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg (the PostgreSQL driver, `dev` extra) is not installed"
    )
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql "
            "(.ci/run does)"
        )
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root and there is no runuser to run PostgreSQL as postgres")
        run_as = [runuser, "-u", "postgres", "--"]

    base = Path(tempfile.mkdtemp(prefix="stevie-pg-"))  # /tmp: reachable by postgres
    data, log, pwfile = base / "data", base / "postgres.log", base / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if owner is not None:
        for path in (base, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def pg(*args: str) -> None:
        done = subprocess.run(
            [*run_as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            logged = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{logged}")

    port = _free_port()
    started = False
    try:
        pg(
            str(bin_dir / "initdb"),
            "-D", str(data), "-U", "stevie", f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        started = True
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="stevie",
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute("CREATE DATABASE stevie_hpo")
        yield f"postgresql://stevie:{PASSWORD}@127.0.0.1:{port}/stevie_hpo"
    finally:
        if started:
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


# --- tests ---------------------------------------------------------------------------------
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
    trials = optuna.load_study(study_name="pg-hpo", storage=postgres_url).get_trials()
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
    assert (data / "default" / "hpostudies" / "pg-hpo" / "optimization_report.txt").is_file()
