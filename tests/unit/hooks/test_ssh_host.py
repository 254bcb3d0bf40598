"""Where an ssh target's host key comes from, and what is refused, from real Airflow Connections
(AIRFLOW_CONN_* variables) read by the SSH provider's async hook. No connection is opened here."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import BaseHook

from stella_operators.hooks.ssh_host import StellaSSHHookAsync, ssh_endpoint

LINE = "10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOaxxRY9cuKXu0qbVsbqhMZ7ZQX2x5i7lXy6n3mBq5Yb"


def conn(monkeypatch, conn_id: str, host: str | None = "10.0.0.5", **extra) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "ssh", "host": host, "login": "deploy", "extra": extra}))


def parsed(conn_id: str, **kw) -> StellaSSHHookAsync:
    hook = StellaSSHHookAsync(conn_id, **kw)
    hook._parse_extras(BaseHook.get_connection(conn_id))
    return hook


def test_known_hosts_lines_in_the_extra_are_used_as_data_and_win_over_the_file(monkeypatch, tmp_path):
    conn(monkeypatch, "h_inline", known_hosts=LINE + "\n")
    assert parsed("h_inline", known_hosts_file=str(tmp_path / "kh")).known_hosts == (LINE + "\n").encode()


def test_a_known_hosts_path_in_the_extra_wins_over_the_targets_file(monkeypatch, tmp_path):
    mine = tmp_path / "extra_kh"
    mine.write_text(LINE + "\n")
    conn(monkeypatch, "h_path", known_hosts=str(mine))
    assert parsed("h_path", known_hosts_file=str(tmp_path / "kh")).known_hosts == str(mine)
    conn(monkeypatch, "h_missing", known_hosts=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="known_hosts file .*nope does not exist"):
        parsed("h_missing")


def test_host_key_wins_and_is_bound_to_the_host(monkeypatch):
    conn(monkeypatch, "h_key", host_key=" ".join(LINE.split()[1:]), known_hosts="/dev/null")
    assert parsed("h_key").known_hosts == LINE.encode()


def test_no_host_key_check_is_refused_unless_insecure_demo(monkeypatch):
    conn(monkeypatch, "h_trust", no_host_key_check="true")
    with pytest.raises(ValueError, match="always verified.*insecure_demo: true"):
        parsed("h_trust")
    with pytest.raises(ValueError, match="no_host_key_check.*insecure_demo: true"):
        ssh_endpoint("t1", "h_trust")
    assert parsed("h_trust", insecure_demo=True).known_hosts == "none"
    assert ssh_endpoint("t1", "h_trust", insecure_demo=True).address == "10.0.0.5:22"


def test_a_missing_connection_or_host_is_named(monkeypatch):
    with pytest.raises(ValueError, match="target t1: Airflow Connection 'h_absent' is not defined"):
        ssh_endpoint("t1", "h_absent")
    conn(monkeypatch, "h_nohost", host=None)
    with pytest.raises(ValueError, match="Connection 'h_nohost' has no host"):
        ssh_endpoint("t1", "h_nohost")
