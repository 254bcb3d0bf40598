"""SSH clients for targets, from Airflow `ssh` Connections through the SSH provider's SSHHook.

Host keys are verified as stella_operators.hooks.host_key_policy says (pinned `host_key`, extra
`known_hosts` lines or file, the worker's ~/.ssh/known_hosts; an unknown or changed key is refused).
A Connection that switches the check off (`no_host_key_check` or `allow_host_key_change`) is refused
too: compose targets have no demo escape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.ssh.hooks.ssh import SSHHook
from airflow.sdk.exceptions import AirflowNotFoundException

from stella_operators.hooks.host_key_policy import known_host_key, verification_off_refusal


def ssh_connector(conn_id: str, *, connect_attempts: int = 3, timeout_s: int = 15) -> tuple[str, Callable[[], Any]]:
    """`(where, connect)`: a description `user@host:port (connection ID)` and a function returning a
    connected paramiko SSHClient (a fresh one each call)."""
    hook = _hook(conn_id, connect_attempts, timeout_s)
    where = f"{hook.username or '?'}@{hook.remote_host}:{hook.port or 22}, connection {conn_id}"

    def connect() -> Any:
        return _hook(conn_id, connect_attempts, timeout_s).get_conn()

    return where, connect


def _hook(conn_id: str, connect_attempts: int, timeout_s: int) -> SSHHook:
    try:
        hook = SSHHook(ssh_conn_id=conn_id, conn_timeout=timeout_s, conn_retry_attempts=connect_attempts,
                       keepalive_interval=15, banner_timeout=timeout_s, auth_timeout=timeout_s)
    except AirflowNotFoundException:
        raise ValueError(f"target connection {conn_id!r} is not defined in Airflow (an ssh Connection: host, "
                         "login, key, extra host_key)") from None
    if hook.no_host_key_check or hook.allow_host_key_change:
        raise ValueError(verification_off_refusal(conn_id, "no_host_key_check / allow_host_key_change"))
    if not hook.remote_host:
        raise ValueError(f"connection {conn_id!r} has no host")
    known_hosts = hook.get_connection(conn_id).extra_dejson.get("known_hosts")
    if hook.host_key is None and known_hosts:
        hook.host_key = known_host_key(conn_id, known_hosts, hook.remote_host, hook.port or 22)
    return hook

