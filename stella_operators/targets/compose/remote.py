"""Commands and files on one host over SSH, given a connected paramiko SSHClient (no Airflow here:
the hook layer builds the client from an Airflow Connection, host key verified).

Every command is an argument list joined with `shlex.join`, so nothing the estate or a release
holds is ever interpreted by the remote shell. Commands and their output are not logged here
(output can be long, and callers redact what they show). Files go through SFTP, never through a
command line: an env file's content never appears in a process list or a log.
"""

from __future__ import annotations

import selectors
import shlex
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko  # type: ignore[import-untyped]


class RemoteError(RuntimeError):
    """The host could not be reached, or a command could not be run (not: it ran and failed)."""


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def error_text(self, limit: int = 800) -> str:
        text = (self.stderr.strip() or self.stdout.strip())[-limit:]
        return f"exit {self.status}: {text}" if text else f"exit {self.status}"


class SshRemote:
    """One host reached over SSH. `connect()` returns a connected paramiko SSHClient; it is called
    again when the transport died (a host that comes back is reached again)."""

    def __init__(self, where: str, connect: Callable[[], Any]):
        self.where = where
        self._connect = connect
        self._client: Any = None
        self._sftp: Any = None
        self._lock = threading.Lock()

    def _transport(self) -> Any:
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            if transport is None or not transport.is_active():
                self.close()
                try:
                    self._client = self._connect()
                except Exception as exc:  # noqa: BLE001 - paramiko, socket and Airflow errors alike
                    raise RemoteError(f"cannot connect over SSH: {type(exc).__name__}: {exc}") from None
                transport = self._client.get_transport()
            return transport

    def close(self) -> None:
        for obj in (self._sftp, self._client):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001,S110 - closing a dead connection may fail; nothing to do
                    pass
        self._sftp = self._client = None

    def run(self, argv: Sequence[str], *, timeout_s: float, cancel: threading.Event | None = None) -> RunResult:
        """Run one command (quoted arguments) and wait for it, at most `timeout_s`; stop waiting
        (RemoteError) once `cancel` is set."""
        command = shlex.join(argv)
        try:
            channel = self._transport().open_session(timeout=min(timeout_s, 30))
            channel.exec_command(command)
            channel.shutdown_write()
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise RemoteError(f"cannot start the command over SSH: {type(exc).__name__}: {exc}") from None
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout_s
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(channel, selectors.EVENT_READ)
                while True:
                    while channel.recv_ready():
                        out += channel.recv(65536)
                    while channel.recv_stderr_ready():
                        err += channel.recv_stderr(65536)
                    if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                        if channel.eof_received or channel.closed:
                            break
                    if cancel is not None and cancel.is_set():
                        raise RemoteError("cancelled: stopped waiting for the command")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise RemoteError(f"did not finish within {timeout_s:.0f} s")
                    if channel.closed and not channel.exit_status_ready():
                        raise RemoteError("the SSH channel closed before the command ended")
                    selector.select(min(remaining, 0.5))
            status = channel.recv_exit_status()
        finally:
            channel.close()
        return RunResult(tuple(argv), status, out.decode(errors="replace"), err.decode(errors="replace"))

    # files ---------------------------------------------------------------------------------
    def _sftp_client(self) -> Any:
        transport = self._transport()
        with self._lock:
            if self._sftp is None or self._sftp.get_channel().closed:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            return self._sftp

    def _sftp_call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._sftp_client())
        except RemoteError:
            raise
        except FileNotFoundError:
            raise
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                raise FileNotFoundError(what) from None
            raise RemoteError(f"{what}: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise RemoteError(f"{what}: {type(exc).__name__}: {exc}") from None

    def read_file(self, path: str) -> str | None:
        """The file's text, None when it does not exist."""
        def read(sftp: Any) -> str:
            with sftp.open(path, "rb") as fh:
                return bytes(fh.read()).decode()
        try:
            return str(self._sftp_call(f"read {path}", read))
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        try:
            self._sftp_call(f"stat {path}", lambda sftp: sftp.stat(path))
        except FileNotFoundError:
            return False
        return True

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """mkdir -p, then chmod `mode` on the last folder."""
        def mk(sftp: Any) -> None:
            parts = [p for p in path.split("/") if p]
            current = ""
            for part in parts:
                current += "/" + part
                try:
                    if not stat.S_ISDIR(sftp.stat(current).st_mode):
                        raise RemoteError(f"{current} exists and is not a folder")
                except FileNotFoundError:
                    sftp.mkdir(current, mode)
            sftp.chmod(path, mode)
        self._sftp_call(f"mkdir {path}", mk)

    def write_file(self, path: str, text: str, *, mode: int = 0o644) -> None:
        """Write atomically (temporary file, chmod before any byte is written, rename over `path`)."""
        tmp = f"{path}.tmp-stella"

        def write(sftp: Any) -> None:
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(text.encode())
            sftp.posix_rename(tmp, path)
        self._sftp_call(f"write {path}", write)

    def rename(self, src: str, dst: str) -> None:
        """Rename, replacing `dst` (posix rename)."""
        self._sftp_call(f"rename {src} -> {dst}", lambda sftp: sftp.posix_rename(src, dst))

    def remove(self, path: str) -> None:
        try:
            self._sftp_call(f"remove {path}", lambda sftp: sftp.remove(path))
        except FileNotFoundError:
            return

    def listdir(self, path: str) -> list[str]:
        try:
            return list(self._sftp_call(f"list {path}", lambda sftp: sftp.listdir(path)))
        except FileNotFoundError:
            return []

    def remove_tree(self, path: str) -> None:
        """Remove a folder of files (one level of sub-folders, as env/<deployment>/ is)."""
        def rm(sftp: Any) -> None:
            for entry in sftp.listdir_attr(path):
                child = f"{path}/{entry.filename}"
                if stat.S_ISDIR(entry.st_mode or 0):
                    for leaf in sftp.listdir(child):
                        sftp.remove(f"{child}/{leaf}")
                    sftp.rmdir(child)
                else:
                    sftp.remove(child)
            sftp.rmdir(path)
        try:
            self._sftp_call(f"remove {path}", rm)
        except FileNotFoundError:
            return
