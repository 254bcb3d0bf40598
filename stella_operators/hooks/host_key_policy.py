"""The host key policy of every SSH connection stella opens (compose targets through the SSH
provider's `SSHHook`, ssh targets through its `SSHHookAsync`): one set of rules and messages.

* Host keys are always verified. Key source, first found: the Connection's extra `host_key` (the
  pinned public key, `ssh-keyscan HOST`), its extra `known_hosts` (the lines themselves, or the path
  of a file on the worker), the target's own known_hosts file (ssh targets), `~/.ssh/known_hosts`.
  An unknown or changed key is refused.
* A Connection that turns verification off is refused, unless the target explicitly allows it
  for a throwaway demo (`insecure_demo: true`, ssh targets only).
* A known_hosts file that is named but missing is an error of the Connection, not "no key".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import paramiko  # type: ignore[import-untyped]

# Extras with which the SSH provider skips host key verification (`ignore_hostkey_verification` is
# the deprecated spelling of `no_host_key_check`).
SKIP_CHECK_EXTRAS = ("no_host_key_check", "ignore_hostkey_verification")

# The key a known_hosts entry pins when it lists several types: strongest first.
_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                   "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


def truthy(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def skips_host_key_check(extra: Mapping[str, Any]) -> bool:
    """Whether a Connection's extra asks the provider to skip host key verification."""
    return any(truthy(extra.get(name)) for name in SKIP_CHECK_EXTRAS)


def verification_off_refusal(conn_id: str, settings: str, *, demo_escape: bool = False) -> str:
    """The message refusing Connection `conn_id`, which turns verification off through `settings`
    (the extras' names); `demo_escape`: the target type allows `insecure_demo: true`."""
    fix = ("put the host's public key in the Connection's extra `host_key` (ssh-keyscan HOST) or "
           "`known_hosts`, or in the worker's ~/.ssh/known_hosts")
    if demo_escape:
        fix += ", or set `insecure_demo: true` in the target's settings (throwaway demo only)"
    return (f"connection {conn_id!r} turns host key verification off ({settings}): refused, host keys are "
            f"always verified; {fix}")


def known_hosts_source(value: Any) -> bytes | str:
    """An extra `known_hosts`: its lines as bytes (what asyncssh takes as known_hosts data), or the
    expanded path of a known_hosts file."""
    text = str(value)
    inline = "\n" in text.strip() or len(text.split()) >= 3
    return text.encode() if inline else os.path.expanduser(text)


def missing_known_hosts_file(conn_id: str, path: str) -> str | None:
    """The error for a known_hosts file that does not exist, or None when it does."""
    return None if os.path.isfile(path) else f"connection {conn_id!r}: known_hosts file {path} does not exist"


def known_host_key(conn_id: str, value: Any, host: str, port: int) -> paramiko.PKey:
    """The key that an extra `known_hosts` (lines or a file) holds for `host`:`port` (pinned by the
    caller, as a `host_key` is); refused when the host is not there."""
    source = known_hosts_source(value)
    keys = paramiko.HostKeys()
    if isinstance(source, bytes):
        where = "the Connection's known_hosts lines"
        for line in source.decode().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            for name in entry.hostnames if entry is not None else ():
                keys.add(name, entry.key.get_name(), entry.key)
    else:
        where = f"the known_hosts file {source}"
        if error := missing_known_hosts_file(conn_id, source):
            raise ValueError(error)
        try:
            keys.load(source)
        except OSError as exc:
            raise ValueError(f"connection {conn_id!r}: cannot read known_hosts file {source}: {exc}") from None
    entry = keys.lookup(host if port == 22 else f"[{host}]:{port}")
    if not entry:
        raise ValueError(f"connection {conn_id!r}: {host}:{port} is not in {where}; "
                         "add its line (ssh-keyscan) before deploying")
    for key_type in _KEY_PREFERENCE:
        if key_type in entry:
            return entry[key_type]
    return next(iter(entry.values()))
