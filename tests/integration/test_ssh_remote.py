"""SshRemote (commands and files on a host over SSH) against a real OpenSSH server on 127.0.0.1,
reached through an Airflow `ssh` Connection and the SSH provider's SSHHook (host key pinned)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator

import pytest

from devstack.registry import free_port
from devstack.sshd import SshServer, client_key
from stella_operators.hooks.ssh_connect import ssh_connector
from stella_operators.targets.compose.remote import RemoteError, SshRemote

pytestmark = pytest.mark.root
CONN = "stella_ssh_remote_test"


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Iterator[SshRemote]:
    if os.geteuid() != 0:
        pytest.skip("sshd logs in as root here; CI runs as root")
    work = tmp_path_factory.mktemp("ssh-remote")
    key = client_key(work)
    server = SshServer(work / "sshd", listen="127.0.0.1", port=free_port(), authorized_keys=[key.with_suffix(".pub")])
    server.start()
    key_type, key_data = server.host_key_line().split()[1:3]
    os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = json.dumps(
        {"conn_type": "ssh", "host": "127.0.0.1", "port": server.port, "login": "root",
         "extra": {"key_file": str(key), "host_key": f"{key_type} {key_data}"}})
    where, connect = ssh_connector(CONN, connect_attempts=1)
    r = SshRemote(where, connect)
    try:
        yield r
    finally:
        r.close()
        server.stop()
        os.environ.pop(f"AIRFLOW_CONN_{CONN.upper()}", None)


def test_a_command_is_run_from_quoted_arguments(remote):
    r = remote.run(["sh", "-c", 'printf "%s|" "$0" "$1"; echo oops >&2; exit 3', "a b", "$(touch /tmp/x); 'q'"],
                   timeout_s=20)
    assert (r.status, r.stdout, r.stderr) == (3, "a b|$(touch /tmp/x); 'q'|", "oops\n")
    assert r.error_text() == "exit 3: oops"


def test_a_command_that_runs_too_long_is_abandoned_with_a_clear_error(remote):
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match="did not finish within 1 s"):
        remote.run(["sleep", "30"], timeout_s=1)
    assert time.monotonic() - t0 < 5
    assert remote.run(["true"], timeout_s=10).ok  # the connection is still usable


def test_cancel_stops_waiting(remote):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(RemoteError, match="cancelled"):
        remote.run(["sleep", "30"], timeout_s=60, cancel=cancel)


def test_files_are_written_atomically_with_their_mode_and_read_back(remote, tmp_path):
    folder = tmp_path / "p" / "env"
    remote.makedirs(str(folder), 0o700)
    assert folder.stat().st_mode & 0o777 == 0o700
    path = str(folder / "web.env")
    remote.write_file(path, "A=secret\n", mode=0o600)
    assert (folder / "web.env").stat().st_mode & 0o777 == 0o600
    assert remote.read_file(path) == "A=secret\n" and remote.read_file(path + ".missing") is None
    assert not (folder / "web.env.tmp-stella").exists()
    remote.rename(path, path + ".old")
    assert remote.listdir(str(folder)) == ["web.env.old"] and remote.exists(path + ".old")
    remote.remove_tree(str(tmp_path / "p"))
    assert not (tmp_path / "p").exists()
