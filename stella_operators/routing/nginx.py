"""`nginx` router: stella owns one file holding an `upstream` block, rewrites it, checks it with
`nginx -t` and reloads nginx (open-source nginx has no runtime API for weights).

The nginx configuration (owned by the operators of the load balancer) includes the file inside
`http {}` and proxies to the upstream, e.g.

    http {
        include /etc/nginx/stella/shop_web.conf;     # upstream_file: written by stella
        server { listen 80; location / { proxy_pass http://shop_web; } }
    }

Every change (shift, enable, disable) is: render the file from the settings' addresses and the
servers' states, keep the current one as `<file>.previous`, `nginx -t`, reload. When `nginx -t`
refuses, the previous file is put back before anything is reloaded, so nginx keeps serving what
it served. Going back to the file before the last change (switch-back) is a swap of the two files
by rename and one reload. `<file>.loaded` records what nginx accepted at stella's last reload.
A reload is graceful: requests in flight finish on the old worker processes; new requests go to
the new ones.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from stella_operators.routing.contract import Route, RouterError
from stella_operators.routing.nginx_upstream import (
    ServerState,
    UpstreamError,
    parse_upstream,
    render_upstream,
    shares,
    split_weights,
)
from stella_operators.routing.registry import RouterType

Address = Annotated[str, StringConstraints(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/")]
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")


class NginxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream_file: AbsPath = Field(
        description="the file holding the upstream block, included by nginx's configuration; stella rewrites it "
                    "and keeps <file>.previous, <file>.loaded and <file>.lock next to it (its directory must be "
                    "writable; the names do not match an `include .../*.conf`)")
    backend: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                         description="name of the `upstream` block in upstream_file (the route's backend)")
    addresses: dict[str, Address] = Field(
        min_length=1, description="server name (the target name) -> host:port nginx proxies to; the file lists "
                                  "exactly these servers")
    config: AbsPath = Field("/etc/nginx/nginx.conf",
                            description="nginx's main configuration: -c of `nginx -t` (before every reload) and "
                                        "of `nginx -s reload`")
    prefix: AbsPath | None = Field(None, description="-p of the nginx commands, when the configuration uses "
                                                      "relative paths")
    nginx: str = Field("nginx", min_length=1, description="the nginx binary")
    pid_file: AbsPath | None = Field(
        None, description="the master's pid file (nginx's `pid`): reload by SIGHUP to it, confirmed by new worker "
                          "processes; unset: `nginx -s reload` (signal sent, not confirmed)")
    max_weight: int = Field(100, ge=1, le=10000, description="largest weight written: a split is exact when its "
                                                             "reduced weights fit, else rounded")
    health_path: str | None = Field(None, pattern=r"^/", description="healthy(): HTTP GET of this path on each "
                                                                      "server (2xx/3xx); unset: a TCP connect")
    timeout_s: float = Field(5.0, gt=0, le=60, description="per nginx command, reload confirmation and probe")

    @field_validator("addresses")
    @classmethod
    def _ports(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
                raise ValueError(f"server name {name!r}: letters, digits, _ . : - (at most 64)")
            if not 1 <= int(address.rsplit(":", 1)[1]) <= 65535:
                raise ValueError(f"{name}: port of {address} is not 1..65535")
        return value


class NginxRouter:
    def __init__(self, settings: NginxSettings):
        self.settings = settings
        self.path = Path(settings.upstream_file)
        self.name = f"nginx ({settings.upstream_file}, upstream {settings.backend})"
        self.route: Route | None = None
        self.reloads = 0  # by this object, for tests and logs

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    @property
    def previous_path(self) -> Path:
        return self._beside(".previous")

    @property
    def loaded_path(self) -> Path:
        return self._beside(".loaded")

    # -- the file ---------------------------------------------------------------------------------
    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """One change at a time, across processes (two tasks shifting at once would interleave the
        write, the check and the reload); readers wait for a change in progress."""
        try:
            fd = os.open(self._beside(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RouterError(f"{self.name}: cannot open {self._beside('.lock')}: {exc.strerror} (the directory "
                              f"of upstream_file must be writable by stella)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> tuple[str, dict[str, ServerState]]:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise RouterError(f"{self.name}: cannot read {self.path}: {exc.strerror}; write it once with "
                              f"stella_operators.routing.nginx_upstream.render_upstream and include it in "
                              f"nginx's http block") from None
        try:
            return text, parse_upstream(text, self.settings.backend, str(self.path))
        except UpstreamError as exc:
            raise RouterError(f"{self.name}: {exc}; stella owns this file: put back {self.previous_path} "
                              f"or a file stella wrote") from None

    def servers(self) -> dict[str, ServerState]:
        with self._locked(exclusive=False):
            return self._read()[1]

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # nginx reading the file never sees half of it

    def _apply(self, what: str, change: Callable[[ServerState], ServerState]) -> None:
        """Rewrite the file with `change` applied to each server, `nginx -t`, reload; on any
        refusal both files are as before and nginx runs what it ran."""
        with self._locked(exclusive=True):
            old, current = self._read()
            new = render_upstream(self.settings.backend, [
                change(replace(current.get(n) or ServerState(n, a), address=a))
                for n, a in self.settings.addresses.items()])
            if new == old:
                return
            previous = self.previous_path.read_text() if self.previous_path.exists() else None
            try:
                if previous == new:  # back to the file before the last change: swap by rename
                    swap = self._beside(".swap")
                    os.replace(self.path, swap)
                    os.replace(self.previous_path, self.path)
                    os.replace(swap, self.previous_path)
                else:
                    self._write(self.previous_path, old)
                    self._write(self.path, new)
            except OSError as exc:
                self._put_back(old, previous)
                raise RouterError(f"{self.name}: cannot write {self.path} for {what}: {exc}") from None
            refused = self.test()
            if refused:
                self._put_back(old, previous)
                raise RouterError(f"{self.name}: `nginx -t` refused the upstream for {what}: {refused}. "
                                  f"{self.path} is back as it was and nginx still runs it; fix the cause (e.g. "
                                  f"the server's address in the router settings) and try again")
            try:
                self._reload()
            except RouterError as exc:
                self._put_back(old, previous)
                raise RouterError(f"{exc}; {self.path} is back as it was (reload nginx after reading its "
                                  f"error log)") from None
            self._write(self.loaded_path, new)

    def _put_back(self, old: str, previous: str | None) -> None:
        self._write(self.path, old)
        if previous is None:
            self.previous_path.unlink(missing_ok=True)
        else:
            self._write(self.previous_path, previous)

    # -- nginx --------------------------------------------------------------------------------------
    def _nginx(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [self.settings.nginx, *args, "-e", "stderr", "-c", self.settings.config]
        if self.settings.prefix:
            cmd += ["-p", self.settings.prefix]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=self.settings.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RouterError(f"{self.name}: `{' '.join(cmd)}` failed: {exc}") from None

    def test(self) -> str | None:
        """nginx's own complaint about its configuration as it is on disk now; None when accepted."""
        done = self._nginx("-t", "-q")
        if done.returncode == 0:
            return None
        lines = [_LOG_PREFIX.sub(r"\1 ", line) for line in done.stderr.splitlines()]
        return "; ".join(ln for ln in lines if not ln.endswith("test failed")) or f"exit status {done.returncode}"

    def _master(self) -> int:
        assert self.settings.pid_file is not None
        try:
            pid = int(Path(self.settings.pid_file).read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError) as exc:
            raise RouterError(f"{self.name}: no running nginx master per {self.settings.pid_file}: {exc} "
                              f"(is nginx running, and is pid_file its `pid` directive?)") from None

    def _reload(self) -> None:
        if self.settings.pid_file is None:
            done = self._nginx("-s", "reload")
            if done.returncode != 0:
                raise RouterError(f"{self.name}: `nginx -s reload` failed: {done.stderr.strip()}")
            self.reloads += 1
            return
        pid = self._master()
        before = _children(pid)
        os.kill(pid, signal.SIGHUP)
        self.reloads += 1
        # nginx starts new workers only once it accepted the new configuration. It tells the old
        # ones to stop accepting ~100 ms later (its master sleeps in between): until then a new
        # connection may still land on the old configuration, so wait for that too. Old workers
        # then finish their requests in flight and exit.
        deadline = time.monotonic() + self.settings.timeout_s
        while not _children(pid) - before:
            if time.monotonic() > deadline:
                raise RouterError(f"{self.name}: nginx (pid {pid}) started no new worker within "
                                  f"{self.settings.timeout_s:.0f} s of the reload: it refused the configuration "
                                  f"(see its error_log)")
            time.sleep(0.005)
        while any(_still_accepting(w) for w in before):
            if time.monotonic() > deadline:
                raise RouterError(f"{self.name}: nginx (pid {pid}) reloaded, but its old workers still accept "
                                  f"connections {self.settings.timeout_s:.0f} s later")
            time.sleep(0.005)

    # -- the Router interface -----------------------------------------------------------------------
    def configure(self, route: Route) -> None:
        if route.backend != self.settings.backend:
            raise RouterError(f"{self.name}: the route is for backend {route.backend}")
        missing = [s for s in route.servers() if s not in self.settings.addresses]
        if missing:
            raise RouterError(f"{self.name}: no address for server {', '.join(missing)} (add it to the router "
                              f"settings' addresses: server name -> host:port)")
        self.route = route
        problems = self.validate()
        if problems:
            self.route = None
            raise RouterError(f"{self.name}: " + "; ".join(problems))

    def _route(self) -> Route:
        if self.route is None:
            raise RouterError(f"{self.name}: configure a route first")
        return self.route

    def validate(self) -> list[str]:
        """The file is readable and stella's, nginx accepts its configuration, nginx runs (when
        pid_file is set) and runs the file as stella last loaded it."""
        problems = []
        try:
            with self._locked(exclusive=False):
                text, _ = self._read()
                loaded = self.loaded_path.read_text() if self.loaded_path.exists() else None
        except RouterError as exc:
            return [str(exc)]
        if loaded is not None and loaded != text:
            problems.append(f"{self.path} differs from what stella last loaded into nginx ({self.loaded_path})")
        refused = self.test()
        if refused:
            problems.append(f"`nginx -t` refuses the configuration as it is: {refused}")
        if self.settings.pid_file is not None:
            try:
                self._master()
            except RouterError as exc:
                problems.append(str(exc))
        return problems

    def shift(self, group: str, percent: int) -> None:
        route = self._route()
        if len(route.groups) != 2 or group not in route.groups:
            raise RouterError(f"{self.name}: shifting needs a route of two groups including {group}")
        if not 0 <= percent <= 100:
            raise RouterError(f"{self.name}: a traffic share is 0..100, not {percent}")
        weights = split_weights(route, group, percent, self.settings.max_weight)
        self._apply(f"{percent} % to {group}",
                    lambda s: replace(s, weight=weights[s.name]) if s.name in weights else s)

    def distribution(self) -> dict[str, int]:
        """Each group's share under nginx's weighted round robin, computed from the upstream file.

        What this proves: the file stella last wrote, `nginx -t` accepted and nginx reloaded --
        with pid_file, confirmed: new workers started (nginx applied it) and the old ones stopped
        accepting; without it, only that `nginx -s reload` signalled the master. A file that
        differs from `<file>.loaded` (edited by hand, or a reload that failed) is an error, not a
        distribution. What it cannot prove: open-source nginx exposes no per-server counters, so
        neither the requests actually served nor a server its passive checks (max_fails) set aside
        for a while; requests in flight on old workers finish where they started.
        """
        route = self._route()
        with self._locked(exclusive=False):
            text, servers = self._read()
            loaded = self.loaded_path.read_text() if self.loaded_path.exists() else None
        if loaded is not None and loaded != text:
            raise RouterError(f"{self.name}: {self.path} differs from what stella last loaded into nginx "
                              f"({self.loaded_path}): edited by hand or not reloaded; compare the two, then shift "
                              f"again (stella rewrites and reloads it)")
        return shares(route, servers)

    def healthy(self, group: str) -> dict[str, bool]:
        """Server -> not in maintenance and answering a probe from here (the machine stella runs
        on): a TCP connect, or with health_path an HTTP GET answered 2xx/3xx. nginx-light has no
        active health checks of its own, so this is stella's view of the server, which is nginx's
        only when stella runs where nginx runs (or shares its network path)."""
        servers = self.servers()
        out = {}
        for name in self._route().groups[group]:
            state = servers.get(name)
            out[name] = (state is None or not state.maint) and self._probe(self.settings.addresses[name])
        return out

    def _probe(self, address: str) -> bool:
        host, port = address.rsplit(":", 1)
        host = host.strip("[]")
        try:
            if self.settings.health_path is None:
                with socket.create_connection((host, int(port)), timeout=self.settings.timeout_s):
                    return True
            conn = http.client.HTTPConnection(host, int(port), timeout=self.settings.timeout_s)
            try:
                conn.request("GET", self.settings.health_path)
                return conn.getresponse().status < 400
            finally:
                conn.close()
        except OSError:
            return False

    def enable(self, group: str) -> None:
        names = set(self._route().groups[group])
        self._apply(f"enabling {group}", lambda s: replace(s, maint=False) if s.name in names else s)

    def disable(self, group: str) -> None:
        names = set(self._route().groups[group])
        self._apply(f"disabling {group}", lambda s: replace(s, maint=True) if s.name in names else s)


def _still_accepting(worker: int) -> bool:
    """An old nginx worker still takes new connections: alive and not yet retitled "... is
    shutting down" (nginx's title once it closed its listening sockets)."""
    try:
        title = Path(f"/proc/{worker}/cmdline").read_bytes()
    except OSError:
        return False
    return bool(title) and b"shutting down" not in title and b"nginx: " in title


def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:  # kernels without CONFIG_PROC_CHILDREN: scan every process's parent
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == str(pid):
                found.add(int(stat.parent.name))
        return found


ROUTER_TYPE = RouterType(
    name="nginx", summary="nginx: rewrites an upstream file (weights, down), `nginx -t`, graceful reload; "
                          "switch-back to the previous file by rename",
    tested_against="real nginx 1.22 (Debian nginx-light) with real HTTP backends", settings=NginxSettings,
    build=NginxRouter)
