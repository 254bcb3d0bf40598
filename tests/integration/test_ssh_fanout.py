"""The fan-out module against real sshd hosts (own namespaces and addresses), through Airflow
Connections and the SSH provider's async hook: a change lands on every reachable host, a dead host
is reported with its address, a host with the wrong key is refused, in one call."""

from __future__ import annotations

import hashlib
import json

import pytest

from stella_operators.hooks.ssh_host import ssh_endpoint
from stella_operators.targets.ssh.fanout import RemoteFile, apply_change

pytestmark = pytest.mark.root

DATA = b"# 2 KB of config\n" * 120


def test_one_change_to_many_hosts_reports_each_host(ssh_hosts, ssh_lab, tmp_path, monkeypatch):
    s1, s2, s3 = ssh_hosts
    for h, key_of in ((s1, s1), (s2, s2), (s3, s1)):  # s3's Connection carries s1's key: a mismatch
        monkeypatch.setenv(f"AIRFLOW_CONN_FAN_{h.name.upper()}", json.dumps({
            "conn_type": "ssh", "host": h.ip, "login": "root",
            "extra": {"key_file": str(ssh_lab.client_key), "host_key": key_of.host_key()}}))
    endpoints = [ssh_endpoint(h.name, f"fan_{h.name}") for h in ssh_hosts]
    ssh_lab.kill("s2")

    def path(ep):
        return str(tmp_path / f"{ep.name} it's" / "app.conf")

    results = apply_change(endpoints, files=lambda ep: [RemoteFile(path(ep), DATA)],
                           command=lambda ep: ["sha256sum", path(ep)], timeout_s=30)
    by = {r.host: r for r in results}
    assert [r.host for r in results] == ["s1", "s2", "s3"]
    assert by["s1"].ok and by["s1"].stdout.startswith(hashlib.sha256(DATA).hexdigest())
    assert not by["s2"].ok and "10.204.0.11:22" in (by["s2"].error or "")
    assert not by["s3"].ok and "host key of 10.204.0.12:22 is not trusted" in (by["s3"].error or "")
    assert not (tmp_path / "s3 it's").exists()
