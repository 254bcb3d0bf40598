"""devstack.sshd starts a real sshd that accepts only the lab key and verifies as its own host key."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from devstack.sshd import SshServer, client_key

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sshd runs as root here (UsePAM no, root login)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_lab_sshd_runs_commands_for_the_lab_key_and_stops(tmp_path):
    key = client_key(tmp_path)
    server = SshServer(tmp_path / "srv", port=_free_port(), authorized_keys=[key.with_suffix(".pub")])
    server.start()
    try:
        known = tmp_path / "known_hosts"
        known.write_text(server.host_key_line() + "\n")
        r = subprocess.run(["ssh", "-i", str(key), "-p", str(server.port), "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                            "root@127.0.0.1", "echo", "hello"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello\n"
    finally:
        server.stop()
    assert not server.running
