"""SSH endpoints of `ssh` targets, from Airflow Connections through the SSH provider's async hook.

The provider's `SSHHookAsync` reads login, password, `key_file` / `private_key` (+ passphrase),
`host_key` and `known_hosts` from the Connection and opens an asyncssh connection: we reuse it as
is (one Connection lookup + one handshake per host and deployment), with three additions:

* host keys are always verified: a Connection with `no_host_key_check: true` is refused unless the
  target says `insecure_demo: true` (the provider would only log a warning);
* the extra `known_hosts` may hold the lines themselves, not only a file path;
* the connect + login is bounded by the target's `connect_timeout_s`.
Key source, first found: extra `host_key`, extra `known_hosts`, the target's `known_hosts_file`,
`~/.ssh/known_hosts`. No key for the host there: the connection is refused (asyncssh).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import asyncssh
from airflow.providers.ssh.hooks.ssh import SSHHookAsync

from stella_operators.hooks.connections import connection_or_none
from stella_operators.targets.ssh.fanout import Endpoint

log = logging.getLogger(__name__)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() == "true"


class StellaSSHHookAsync(SSHHookAsync):
    """`SSHHookAsync` that never skips host key verification silently (see the module docstring)."""

    def __init__(self, ssh_conn_id: str, *, known_hosts_file: str | None = None, insecure_demo: bool = False,
                 connect_timeout_s: float = 10):
        if known_hosts_file:
            super().__init__(ssh_conn_id=ssh_conn_id, known_hosts=known_hosts_file)
        else:
            super().__init__(ssh_conn_id=ssh_conn_id)
        self.insecure_demo = insecure_demo
        self.connect_timeout_s = connect_timeout_s

    def _parse_extras(self, conn: Any) -> None:
        extra = dict(conn.extra_dejson)
        if _truthy(extra.get("no_host_key_check")) or _truthy(extra.get("ignore_hostkey_verification")):
            if not self.insecure_demo:
                raise ValueError(
                    f"connection {self.ssh_conn_id!r} sets no_host_key_check: host keys of ssh targets are always "
                    "verified. Put the host's key in the Connection's extra `host_key` (or `known_hosts`), or set "
                    "`insecure_demo: true` in the target's settings for a throwaway demo")
            log.warning("ssh target connection %s: host key NOT verified (insecure_demo)", self.ssh_conn_id)
        known = extra.pop("known_hosts", None)
        super()._parse_extras(_WithExtra(conn, extra))
        if known and extra.get("host_key") is None and self.known_hosts != "none":
            # lines (asyncssh takes bytes as known_hosts data) or a file path; either wins over the
            # target's known_hosts_file (the provider would let the constructor's file win over a path)
            text = str(known)
            inline = "\n" in text.strip() or len(text.split()) >= 3
            self.known_hosts = text.encode() if inline else os.path.expanduser(text)
        self._check_known_hosts_file()

    def _check_known_hosts_file(self) -> None:
        if isinstance(self.known_hosts, str) and self.known_hosts.lower() != "none" \
                and self.known_hosts != os.path.expanduser(self.default_known_hosts) \
                and not os.path.isfile(self.known_hosts):
            raise ValueError(f"connection {self.ssh_conn_id!r}: known_hosts file {self.known_hosts} does not exist")

    async def connect(self) -> asyncssh.SSHClientConnection:
        self._check_known_hosts_file()
        return await asyncio.wait_for(self._get_conn(), self.connect_timeout_s)


class _WithExtra:
    """A Connection seen with a rewritten extra (the original is left alone)."""

    def __init__(self, conn: Any, extra: dict[str, Any]):
        self._conn = conn
        self.extra_dejson = extra
        self.extra = "{}" if extra else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def ssh_endpoint(name: str, conn_id: str, *, known_hosts_file: str | None = None, insecure_demo: bool = False,
                 connect_timeout_s: float = 10) -> Endpoint:
    """The Endpoint of one target: its address for messages and a connect() through the provider's hook."""
    conn = connection_or_none(conn_id)
    if conn is None:
        raise ValueError(f"target {name}: Airflow Connection {conn_id!r} is not defined "
                         "(an ssh Connection: host, port, login, extra key_file or private_key, host_key)")
    if not conn.host:
        raise ValueError(f"target {name}: Connection {conn_id!r} has no host")
    address = f"{conn.host}:{conn.port or 22}"
    extra = conn.extra_dejson
    if (_truthy(extra.get("no_host_key_check")) or _truthy(extra.get("ignore_hostkey_verification"))) \
            and not insecure_demo:
        raise ValueError(f"target {name}: Connection {conn_id!r} sets no_host_key_check, but host keys of ssh "
                         "targets are always verified: give the host's key as extra `host_key` (or "
                         "`known_hosts`), or set `insecure_demo: true` in the target's settings (demo only)")

    async def connect() -> asyncssh.SSHClientConnection:
        # a fresh hook per connection: the provider's hook keeps what it parsed on itself
        hook = StellaSSHHookAsync(conn_id, known_hosts_file=known_hosts_file, insecure_demo=insecure_demo,
                                  connect_timeout_s=connect_timeout_s)
        return await hook.connect()

    return Endpoint(name=name, address=address, connect=connect)
