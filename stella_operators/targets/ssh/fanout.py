"""SSH fan-out: one event loop and asyncssh for every host, instead of a thread (or a process) each.

    results = apply_change(endpoints, files=[RemoteFile("/etc/app/x.conf", data)], command=["app", "reload"])

Each host costs one connection and one exec channel: the files travel as the channel's stdin
(`cat`, or `tar` for several) and the command runs right after, in the same remote shell. That is
the whole trick against Ansible (a Python interpreter and a module upload per task per host) and
what keeps this within a few per cent of a bare asyncssh loop.

The ssh target's steps run on the same loop (`LOOP.run(coro)` from the engine's worker threads), so
a deployment to a hundred hosts multiplexes on one thread however many engine workers wait on it.
Plain Python (no Airflow): an `Endpoint` carries its own `connect()`; the hooks layer builds
endpoints from Airflow Connections (hooks/ssh_host.py).
"""

from __future__ import annotations

import asyncio
import io
import shlex
import tarfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

import asyncssh

T = TypeVar("T")
Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


@dataclass(frozen=True)
class Endpoint:
    """One host: a name for messages, its address (`host:port`) and how to open a verified connection."""

    name: str
    address: str
    connect: Connect


@dataclass(frozen=True)
class RemoteFile:
    path: str           # absolute path on the host
    data: bytes
    mode: int = 0o644


@dataclass
class ExecResult:
    exit_status: int | None
    stdout: str
    stderr: str


@dataclass
class HostResult:
    host: str
    ok: bool
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    seconds: float = 0.0


class SshError(RuntimeError):
    """A host could not be reached, refused our credentials or its host key: the message says which."""


def describe_error(address: str, exc: BaseException) -> str:
    """A sentence for a connection failure (never a secret: asyncssh messages carry none)."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (f"host key of {address} is not trusted: {exc.reason}. Refusing to connect (a changed key "
                "may be a man in the middle). If the host was reinstalled, check its new key out of band and "
                "update the Connection's extra `host_key`/`known_hosts` or the known_hosts file")
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"{address} refused the login (check the Connection's login and key): {exc.reason}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"{address} closed the SSH connection: {exc.reason}"
    if isinstance(exc, asyncssh.ConnectionLost):
        return f"lost the SSH connection to {address}: {exc}"
    if isinstance(exc, TimeoutError):
        return f"{address} did not answer in time"
    if isinstance(exc, OSError):
        return f"cannot reach {address}: {exc.strerror or exc}"
    return f"{address}: {type(exc).__name__}: {exc}"


class _LoopThread:
    """One asyncio loop in a daemon thread, shared by every ssh target and fan-out of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="stella-ssh-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the shared loop from any other thread and wait for its result."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise


LOOP = _LoopThread()


async def run_command(conn: asyncssh.SSHClientConnection, command: str, *, stdin: bytes | None = None,
                      timeout_s: float) -> ExecResult:
    """One exec channel; `command` is a complete, already quoted shell line. Output decoded as UTF-8."""
    result = await asyncio.wait_for(conn.run(command, input=stdin, encoding=None, check=False), timeout_s)
    return ExecResult(result.exit_status, _text(result.stdout), _text(result.stderr))


def _text(data: Any) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def tar_bytes(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A tar of (relative path, data, mode) entries, parents first; owners left to the extracting user."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for rel, data, mode in files:
            for parent in reversed(PurePosixPath(rel).parents):
                p = str(parent)
                if p not in (".", "") and p not in dirs:
                    dirs.add(p)
                    info = tarfile.TarInfo(p)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
                    tar.addfile(info)
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def change_command(files: Sequence[RemoteFile], command: Sequence[str]) -> tuple[str, bytes]:
    """The one shell line (and its stdin) that writes `files` then runs `command` on a host."""
    q = shlex.quote
    if len(files) == 1:
        f = files[0]
        parent = str(PurePosixPath(f.path).parent)
        line = (f"mkdir -p {q(parent)} && cat > {q(f.path)} && chmod {f.mode:o} {q(f.path)}")
        data = f.data
    else:
        line = "tar --no-same-owner -x -C / -f -"
        data = tar_bytes([(f.path.lstrip("/"), f.data, f.mode) for f in files])
    if command:
        line += " && " + shlex.join(command)
    return line, data


async def _apply_one(ep: Endpoint, line: str, data: bytes, timeout_s: float) -> HostResult:
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            conn = await ep.connect()
            async with conn:
                res = await run_command(conn, line, stdin=data, timeout_s=timeout_s)
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        return HostResult(ep.name, False, error=describe_error(ep.address, exc), seconds=time.monotonic() - t0)
    ok = res.exit_status == 0
    return HostResult(ep.name, ok, res.exit_status, res.stdout, res.stderr,
                      None if ok else f"{ep.name}: exit {res.exit_status}: {res.stderr.strip()[-500:]}",
                      time.monotonic() - t0)


Files = Sequence[RemoteFile] | Callable[[Endpoint], Sequence[RemoteFile]]
Command = Sequence[str] | Callable[[Endpoint], Sequence[str]]


async def apply_change_async(endpoints: Sequence[Endpoint], *, files: Files, command: Command,
                             timeout_s: float = 60, concurrency: int = 256) -> list[HostResult]:
    """Write `files` and run `command` on every endpoint concurrently; one result per endpoint, in order.

    `files` and `command` are the same for every host, or a function of the endpoint (per-host paths
    or contents, as an inventory's host variables would give them)."""
    sem = asyncio.Semaphore(max(1, concurrency))
    shared = None if callable(files) or callable(command) else change_command(files, command)

    async def one(ep: Endpoint) -> HostResult:
        if shared is not None:
            line, data = shared
        else:
            line, data = change_command(files(ep) if callable(files) else files,
                                        command(ep) if callable(command) else command)
        async with sem:
            return await _apply_one(ep, line, data, timeout_s)

    return list(await asyncio.gather(*(one(ep) for ep in endpoints)))


def apply_change(endpoints: Sequence[Endpoint], *, files: Files, command: Command,
                 timeout_s: float = 60, concurrency: int = 256) -> list[HostResult]:
    """Blocking form of `apply_change_async`, on the shared loop."""
    return LOOP.run(apply_change_async(endpoints, files=files, command=command, timeout_s=timeout_s,
                                       concurrency=concurrency), timeout=timeout_s + 30)
