"""SSH endpoints of `ssh` targets, from Airflow Connections through the SSH provider's async hook.

The provider's `SSHHookAsync` reads login, password, `key_file` / `private_key` (+ passphrase),
`host_key` and `known_hosts` from the Connection and opens an asyncssh connection: we reuse it as
is (one Connection lookup + one handshake per host and deployment), with three additions:

* host keys are verified as stella_operators.hooks.host_key_policy says: a Connection with
  `no_host_key_check: true` is refused unless the target says `insecure_demo: true` (the provider
  would only log a warning);
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
from stella_operators.hooks.host_key_policy import (
    SKIP_CHECK_EXTRAS,
    known_hosts_source,
    missing_known_hosts_file,
    skips_host_key_check,
    verification_off_refusal,
)
from stella_operators.targets.ssh.fanout import Endpoint

log = logging.getLogger(__name__)


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
        if skips_host_key_check(extra):
            if not self.insecure_demo:
                raise ValueError(verification_off_refusal(self.ssh_conn_id, " / ".join(SKIP_CHECK_EXTRAS),
                                                          demo_escape=True))
            log.warning("ssh target connection %s: host key NOT verified (insecure_demo)", self.ssh_conn_id)
        known = extra.pop("known_hosts", None)
        super()._parse_extras(_WithExtra(conn, extra))
        if known and extra.get("host_key") is None and self.known_hosts != "none":
            # lines (asyncssh takes bytes as known_hosts data) or a file path; either wins over the
            # target's known_hosts_file (the provider would let the constructor's file win over a path)
            self.known_hosts = known_hosts_source(known)
        self._check_known_hosts_file()

    def _check_known_hosts_file(self) -> None:
        # the default ~/.ssh/known_hosts may be absent (asyncssh then knows no key and refuses)
        if isinstance(self.known_hosts, str) and self.known_hosts.lower() != "none" \
                and self.known_hosts != os.path.expanduser(self.default_known_hosts) \
                and (error := missing_known_hosts_file(self.ssh_conn_id, self.known_hosts)):
            raise ValueError(error)

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
    if skips_host_key_check(conn.extra_dejson) and not insecure_demo:
        # refused before any connection is tried, with the target's name
        raise ValueError(f"target {name}: " + verification_off_refusal(conn_id, " / ".join(SKIP_CHECK_EXTRAS),
                                                                        demo_escape=True))

    async def connect() -> asyncssh.SSHClientConnection:
        # a fresh hook per connection: the provider's hook keeps what it parsed on itself
        hook = StellaSSHHookAsync(conn_id, known_hosts_file=known_hosts_file, insecure_demo=insecure_demo,
                                  connect_timeout_s=connect_timeout_s)
        return await hook.connect()

    return Endpoint(name=name, address=address, connect=connect)
