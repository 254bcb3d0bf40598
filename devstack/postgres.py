"""Start and stop a throwaway PostgreSQL server (a real cluster: initdb + pg_ctl) for tests and demos.

As root the cluster runs as the `postgres` OS user (initdb refuses to run as root); otherwise
it runs as the current user. It listens on 127.0.0.1 only, with trust authentication.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devstack.registry import free_port

SUPERUSER = "postgres"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStartError(RuntimeError):
    """The cluster could not be created or started (binaries missing, port busy, too slow)."""


def find_pg_bindir() -> Path | None:
    """Where initdb/pg_ctl live: $STELLA_PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH."""
    if env := os.environ.get("STELLA_PG_BIN"):
        return Path(env) if (Path(env) / "pg_ctl").exists() else None
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@dataclass
class PostgresServer:
    """A running cluster owned by the caller; `stop()` shuts it down and removes its files."""

    host: str
    port: int
    database: str
    workdir: Path
    bindir: Path
    run_as: str | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        if not _DB_NAME_RE.match(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME_RE.pattern}")
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url_for(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _run([self.bindir / "pg_ctl", "-D", self.workdir / "data", "-m", "immediate", "-w", "stop"],
             self.run_as, self.workdir, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(cmd: list, run_as: str | None, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    kwargs: dict = {}
    if run_as is not None:
        pw = pwd.getpwnam(run_as)
        kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": str(cwd), "USER": run_as, "LOGNAME": run_as}}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)
    if check and proc.returncode != 0:
        raise PostgresStartError(f"{Path(str(cmd[0])).name} failed ({proc.returncode}): "
                                 f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def start_postgres(database: str = "stella", *, port: int | None = None, bindir: Path | None = None,
                   attempts: int = 3) -> PostgresServer:
    """initdb a fresh cluster in a temporary directory, start it, create `database`."""
    bindir = bindir or find_pg_bindir()
    if bindir is None:
        raise PostgresStartError("PostgreSQL server binaries (initdb, pg_ctl) not found; set STELLA_PG_BIN")
    run_as = SUPERUSER if os.geteuid() == 0 else None
    if run_as is not None:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise PostgresStartError(f"running as root needs an OS user {run_as!r} to own the cluster") from None
    workdir = Path(tempfile.mkdtemp(prefix="stella-pg-"))
    try:
        if run_as is not None:
            pw = pwd.getpwnam(run_as)
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
        _run([bindir / "initdb", "-D", workdir / "data", "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], run_as, workdir)
        for attempt in range(attempts):
            chosen = port or free_port()
            opts = (f"-p {chosen} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")
            proc = _run([bindir / "pg_ctl", "-D", workdir / "data", "-l", workdir / "server.log", "-w", "-t", "60",
                         "-o", opts, "start"], run_as, workdir, check=False)
            if proc.returncode == 0:
                break
            if attempt == attempts - 1 or port:
                log = (workdir / "server.log").read_text(errors="replace")[-2000:] \
                    if (workdir / "server.log").exists() else ""
                raise PostgresStartError(f"pg_ctl start failed: {proc.stderr.strip()}\n{log}")
        server = PostgresServer("127.0.0.1", chosen, database, workdir, bindir, run_as)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        server.create_database(database)
    except BaseException:
        server.stop()
        raise
    return server
