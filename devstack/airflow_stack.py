"""A real Airflow 3 deployment on this machine for tests and benchmarks: api-server, scheduler
(LocalExecutor), triggerer and dag-processor as separate processes on a SQLite metadata DB.

Unlike `dag.test()`, runs here are triggered by real users through the real REST API, tasks run
in real worker processes, and deferred tasks wait in the real triggerer.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")


class StackError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class AirflowStack:
    home: Path
    dags_folder: Path
    users: dict[str, str]                       # user -> role
    env: dict[str, str] = field(default_factory=dict)  # extra env: STELLA_*, AIRFLOW_CONN_*
    parallelism: int = 4
    port: int = 0
    listen: str = "127.0.0.1"     # the api-server's address ("0.0.0.0": also reachable from lab namespaces)
    executor: str = "LocalExecutor"  # e.g. "LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor"
    # Airflow's log servers (scheduler's workers, triggerer) default to the fixed ports 8793/8794:
    # free ports instead let two stacks run at once (scripts/test runs two pytest processes).
    worker_log_port: int = 0
    trigger_log_port: int = 0
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environ(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        # No scheduled audit checkpoint DAG unless a stack asks for one (env=...): DAGs start unpaused
        # here, and its runs would take worker slots and write checkpoints of this stack's ledger.
        return {**base, "STELLA_AUDIT_CHECKPOINT_EVERY_MIN": "0", **self.env,
                "PATH": venv_bin + os.pathsep + base.get("PATH", ""),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in self.users.items()),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
                "AIRFLOW__API__SECRET_KEY": self._secret("api"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port or 8793),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port or 8794),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}

    def environ(self, **overrides: str) -> dict[str, str]:
        """The environment of the stack's components (for another Airflow process, e.g. an Edge
        worker), with overrides such as the API URL it reaches the stack by."""
        return {**self._environ(), **overrides}

    def _secret(self, name: str) -> str:
        path = self.home / f".{name}-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def start(self, timeout_s: float = 90) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.listen)
        self.worker_log_port = self.worker_log_port or free_port("0.0.0.0")
        self.trigger_log_port = self.trigger_log_port or free_port("0.0.0.0")
        env = self._environ()
        db = self.home / "airflow.db"
        if db.exists():  # a stack started again on its home: upgrade its DB in place
            _migrate(env)
        else:
            shutil.copyfile(_migrated_template(env), db)
        self.passwords = {u: f"{u}-{secrets.token_hex(4)}" for u in self.users}
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(self.passwords))
        for comp in COMPONENTS:
            args = [sys.executable, "-m", "airflow", comp]
            if comp == "api-server":
                args += ["--port", str(self.port), "--host", self.listen]
            log = open(self.home / f"{comp}.log", "ab")
            self.procs[comp] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for comp, proc in self.procs.items():
                if proc.poll() is not None:
                    raise StackError(f"airflow {comp} exited {proc.returncode}: {self.log_tail(comp)}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as r:
                    health = json.load(r)
                if all(health.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler")):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise StackError(f"airflow stack not healthy after {timeout_s:.0f} s; "
                         f"api-server log: {self.log_tail('api-server')}")

    def wait_for_dag(self, dag_id: str, token: str, timeout_s: float = 120) -> None:
        """Until the dag-processor has parsed and serialized `dag_id` (the API answers 200)."""
        deadline = time.monotonic() + timeout_s
        req = urllib.request.Request(f"{self.url}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {token}"})
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(req, timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        raise StackError(f"DAG {dag_id} not parsed after {timeout_s:.0f} s: {self.log_tail('dag-processor')}")

    def log_tail(self, comp: str, lines: int = 30) -> str:
        try:
            return "\n".join((self.home / f"{comp}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 3) -> None:
        """Stop every component's whole process group (workers, serve-logs, the triggerer's
        child), also when the component itself already exited and left its children behind.

        A stack is throwaway (its SQLite DB and logs stay in its home for post-mortems): the
        components get `grace_s` to end on SIGTERM, then what is left of their groups is killed.
        Waiting longer buys nothing here and used to cost 10-15 s per stack (the api-server's
        graceful shutdown, the triggerer waiting 10 s for its trigger runner)."""
        for proc in self.procs.values():
            try:  # the group, even when its leader is gone: its children still hold ports 8793/8794
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(p.poll() is None or _group_alive(p.pid) for p in self.procs.values()):
            time.sleep(0.1)
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        gone = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, gone - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while _group_alive(proc.pid) and time.monotonic() < gone:
                time.sleep(0.05)
        self.procs = {}


def _migrate(env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise StackError(f"airflow db migrate failed: {out.stderr[-2000:]}")


_TEMPLATE_LOCK = threading.Lock()
_TEMPLATE: Path | None = None


def _migrated_template(env: dict[str, str]) -> Path:
    """A freshly migrated SQLite metadata DB, made once per process and copied for every new stack.

    `airflow db migrate` costs ~10 s (a Python start, Airflow's import, the schema); its result
    depends only on the installed Airflow and providers (same for every stack of a process), so a
    copy is the same database. The template lives in a temporary directory removed at exit."""
    global _TEMPLATE
    with _TEMPLATE_LOCK:
        if _TEMPLATE is None or not _TEMPLATE.exists():
            home = Path(tempfile.mkdtemp(prefix="stella-airflow-template-"))
            atexit.register(shutil.rmtree, home, True)
            db = home / "airflow.db"
            _migrate({**env, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"})
            _TEMPLATE = db
        return _TEMPLATE


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for PID 1 to reap them do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
