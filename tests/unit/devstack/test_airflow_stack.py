"""Stopping the multi-process Airflow stack: the whole process group goes, not only its leader.

The scheduler's LocalExecutor workers and `airflow serve-logs` (ports 8793/8794) live in their
component's process group. A leader that exits promptly on SIGTERM used to leave children that
ignore it running, parented to PID 1 (issue 7).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from devstack.airflow_stack import AirflowStack

# A "component" whose child ignores SIGTERM (as a busy worker may), while the leader obeys it.
COMPONENT = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_stop_ends_children_that_outlive_their_component(tmp_path: Path):
    stack = AirflowStack(home=tmp_path, dags_folder=tmp_path, users={})
    pidfile = tmp_path / "child.pid"
    stack.procs["scheduler"] = subprocess.Popen([sys.executable, "-c", COMPONENT, str(pidfile)],
                                                start_new_session=True)
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    try:
        stack.stop(grace_s=2)
        assert not alive(child), "a child of the stopped component is still running"
        assert stack.procs == {}
    finally:
        subprocess.run(["kill", "-9", str(child)], capture_output=True, check=False)
