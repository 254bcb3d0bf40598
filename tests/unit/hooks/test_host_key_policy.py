"""The host key policy shared by compose targets (SSHHook) and ssh targets (SSHHookAsync): which key
is pinned, what is refused and how the refusal reads. Real Airflow Connections (AIRFLOW_CONN_*
variables); no connection is opened here."""

from __future__ import annotations

import json

import pytest

from stella_operators.hooks.host_key_policy import known_host_key, known_hosts_source, skips_host_key_check
from stella_operators.hooks.ssh_connect import ssh_connector
from stella_operators.hooks.ssh_host import ssh_endpoint

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOaxxRY9cuKXu0qbVsbqhMZ7ZQX2x5i7lXy6n3mBq5Yb"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOgO/BlVpjOtQW5xVJkosyeuxKe10+0L/k4eDW0szF5s"


def conn(monkeypatch, conn_id: str, **extra) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "ssh", "host": "10.0.0.5", "port": 2222, "login": "deploy", "extra": extra}))


def test_known_hosts_value_is_lines_or_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert known_hosts_source(f"10.0.0.5 {KEY}\n") == f"10.0.0.5 {KEY}\n".encode()
    assert known_hosts_source(f"10.0.0.5 {KEY}") == f"10.0.0.5 {KEY}".encode()
    assert known_hosts_source("~/kh") == str(tmp_path / "kh")


def test_the_hosts_key_is_taken_from_a_file_or_lines_and_port_matters(tmp_path):
    lines = f"# comment\n\n10.0.0.5 {OTHER}\n[10.0.0.5]:2222 {KEY}\n"
    (tmp_path / "kh").write_text(lines)
    for value in (str(tmp_path / "kh"), lines):
        assert known_host_key("c", value, "10.0.0.5", 2222).get_base64() == KEY.split()[1]
        assert known_host_key("c", value, "10.0.0.5", 22).get_base64() == OTHER.split()[1]
    with pytest.raises(ValueError, match=r"'c': 10\.0\.0\.9:22 is not in the known_hosts file .*ssh-keyscan"):
        known_host_key("c", str(tmp_path / "kh"), "10.0.0.9", 22)
    with pytest.raises(ValueError, match=r"10\.0\.0\.9:22 is not in the Connection's known_hosts lines"):
        known_host_key("c", lines, "10.0.0.9", 22)
    with pytest.raises(ValueError, match=r"'c': known_hosts file .*nope does not exist"):
        known_host_key("c", str(tmp_path / "nope"), "10.0.0.5", 22)


def test_skipping_the_check_is_seen_in_either_spelling():
    assert skips_host_key_check({"no_host_key_check": "True"})
    assert skips_host_key_check({"ignore_hostkey_verification": True})
    assert not skips_host_key_check({"no_host_key_check": "false", "host_key": KEY})


def test_compose_connections_pin_the_known_hosts_key_and_refuse_skipping_the_check(monkeypatch, tmp_path):
    conn(monkeypatch, "p_lines", key_file="/dev/null", known_hosts=f"[10.0.0.5]:2222 {KEY}\n")
    where, _ = ssh_connector("p_lines")
    assert where == "deploy@10.0.0.5:2222, connection p_lines"
    conn(monkeypatch, "p_absent", key_file="/dev/null", known_hosts=f"10.0.0.7 {KEY}\n")
    with pytest.raises(ValueError, match=r"10\.0\.0\.5:2222 is not in the Connection's known_hosts lines"):
        ssh_connector("p_absent")
    for extra in ({"no_host_key_check": True}, {"allow_host_key_change": True, "host_key": KEY}):
        conn(monkeypatch, "p_off", key_file="/dev/null", **extra)
        with pytest.raises(ValueError, match="'p_off' turns host key verification off .*refused.*host_key") as err:
            ssh_connector("p_off")
        assert "insecure_demo" not in str(err.value)  # compose targets have no demo escape


def test_ssh_targets_refuse_skipping_the_check_with_the_same_words_and_the_demo_escape(monkeypatch):
    conn(monkeypatch, "a_off", no_host_key_check="true")
    with pytest.raises(ValueError, match="target t1: connection 'a_off' turns host key verification off "
                                         r"\(no_host_key_check / ignore_hostkey_verification\): refused.*"
                                         "insecure_demo: true"):
        ssh_endpoint("t1", "a_off")
