"""A throwaway PostgreSQL cluster for tests, from the server binaries (Debian's
``postgresql`` package: .ci/run installs it). Tests that want it skip, saying why, when the
binaries, the psycopg driver or a user to run it as are missing; with ``STEVIE_REQUIRE_POSTGRES``
set (.ci/run sets it) they fail instead, so the RDB tests cannot vanish from a green CI."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = ["REQUIRE_ENV", "postgres_database", "unavailable"]

REQUIRE_ENV = "STEVIE_REQUIRE_POSTGRES"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, saying why; a failure when ``$STEVIE_REQUIRE_POSTGRES`` is set."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"PostgreSQL is required (${REQUIRE_ENV} is set) but {reason}")
    pytest.skip(reason)


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


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """initdb and postgres refuse to run as root: as root they run as ``postgres``."""
    if os.geteuid() != 0:
        return [], None
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root and there is no `postgres` user to run PostgreSQL as")
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("running as root and there is no runuser to run PostgreSQL as postgres")
    return [runuser, "-u", "postgres", "--"], owner


class _Cluster:
    """A cluster folder and the commands that run in it."""

    def __init__(self, bin_dir: Path, password: str) -> None:
        self.bin_dir = bin_dir
        self.run_as, owner = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="stevie-pg-"))  # /tmp: reachable by postgres
        self.data, self.log = self.base / "data", self.base / "postgres.log"
        self.pwfile = self.base / "pwfile"
        self.pwfile.write_text(password + "\n")
        if owner is not None:
            for path in (self.base, self.pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def pg(self, tool: str, *args: str) -> None:
        command = [*self.run_as, str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            logged = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{logged}")

    def start(self, port: int) -> None:
        self.pg(
            "initdb",
            "-D", str(self.data), "-U", "stevie", f"--pwfile={self.pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.base} -c fsync=off"
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def postgres_database(password: str) -> Iterator[str]:
    """``postgresql://stevie:PASSWORD@127.0.0.1:PORT/stevie_hpo`` on a fresh cluster in a
    temp folder (initdb, pg_ctl start; stopped and removed at the end)."""
    psycopg: Any
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg (the PostgreSQL driver, `dev` extra) is not installed")
    bin_dir = _pg_bin()
    if bin_dir is None:
        unavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql "
            "(.ci/run does)"
        )
    cluster, port, started = _Cluster(bin_dir, password), _free_port(), False
    try:
        cluster.start(port)
        started = True
        with psycopg.connect(host="127.0.0.1", port=port, user="stevie", password=password,
                             dbname="postgres", autocommit=True) as conn:  # fmt: skip
            conn.execute("CREATE DATABASE stevie_hpo")
        yield f"postgresql://stevie:{password}@127.0.0.1:{port}/stevie_hpo"
    finally:
        if started:
            cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
