"""SSH clients for targets, from Airflow `ssh` Connections through the SSH provider's SSHHook.

Host keys are always verified, against (first found):
  - extra `host_key`: the host's public key, e.g. `ssh-ed25519 AAAA...` (`ssh-keyscan HOST`), as SSHHook reads it;
  - extra `known_hosts`: path of a known_hosts file on the worker (as SSHHookAsync reads it); the
    host's line (`HOST` or `[HOST]:PORT`) must be in it;
  - the worker's ~/.ssh/known_hosts (SSHHook's fallback).
An unknown or changed key is refused. A Connection that switches the check off
(`no_host_key_check` or `allow_host_key_change`) is refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paramiko  # type: ignore[import-untyped]
from airflow.providers.ssh.hooks.ssh import SSHHook
from airflow.sdk.exceptions import AirflowNotFoundException


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
        raise ValueError(f"connection {conn_id!r} turns host key verification off (no_host_key_check / "
                         "allow_host_key_change): refused; put the host's public key in extra host_key "
                         "(ssh-keyscan HOST) or in the worker's ~/.ssh/known_hosts")
    if not hook.remote_host:
        raise ValueError(f"connection {conn_id!r} has no host")
    known_hosts = hook.get_connection(conn_id).extra_dejson.get("known_hosts")
    if hook.host_key is None and known_hosts:
        hook.host_key = _known_host_key(conn_id, str(known_hosts), hook.remote_host, hook.port or 22)
    return hook


def _known_host_key(conn_id: str, path: str, host: str, port: int) -> paramiko.PKey:
    """The host's key from a known_hosts file (SSHHook then pins it, as it pins extra host_key)."""
    try:
        keys = paramiko.HostKeys(path)
    except OSError as exc:
        raise ValueError(f"connection {conn_id!r}: cannot read known_hosts file {path}: {exc}") from None
    entry = keys.lookup(host if port == 22 else f"[{host}]:{port}")
    if not entry:
        raise ValueError(f"connection {conn_id!r}: {host}:{port} is not in the known_hosts file {path}; "
                         "add its line (ssh-keyscan) before deploying")
    for key_type in ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                     "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"):
        if key_type in entry:
            return entry[key_type]
    return next(iter(entry.values()))
