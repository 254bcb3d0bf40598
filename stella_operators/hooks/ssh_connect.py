"""SSH clients for targets, from Airflow `ssh` Connections through the SSH provider's SSHHook.

Host keys are always verified: the Connection's extra `host_key` (the provider's own field: the
host's public key, e.g. `ssh-ed25519 AAAA...` from `ssh-keyscan`), else the worker's
~/.ssh/known_hosts; an unknown or changed key is refused. A Connection that switches the check off
(`no_host_key_check` or `allow_host_key_change`) is refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.ssh.hooks.ssh import SSHHook
from airflow.sdk.exceptions import AirflowNotFoundException


def ssh_connector(conn_id: str, *, connect_attempts: int = 3, timeout_s: int = 15) -> tuple[str, Callable[[], Any]]:
    """`(where, connect)`: a description `user@host:port (connection ID)` and a function returning a
    connected paramiko SSHClient (a fresh one each call)."""
    hook = _hook(conn_id, connect_attempts, timeout_s)
    where = f"{hook.username or '?'}@{hook.remote_host}:{hook.port or 22} (connection {conn_id})"

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
        raise ValueError(f"connection {conn_id!r} turns host key verification off (no_host_key_check / "
                         "allow_host_key_change): refused; put the host's public key in extra host_key "
                         "(ssh-keyscan HOST) or in the worker's ~/.ssh/known_hosts")
    if not hook.remote_host:
        raise ValueError(f"connection {conn_id!r} has no host")
    return hook
