"""A real HAProxy for tests and the demo: its own config, stats socket, pid file and port.

    proxy = HAProxyServer(workdir, port=18080, backend="shop_web",
                          servers={"blue-1": "127.0.0.1:9001", "green-1": "127.0.0.1:9002"},
                          weights={"green-1": 0})
    proxy.start()        # -> waits until the stats socket answers
    ...
    proxy.stop()         # by pid; safe to call twice

Servers are health-checked every 200 ms (`check inter 200ms fall 2 rise 2`), HTTP `GET /health`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hosts import LabError, _pid_alive, _stop_pid, _tail


def haproxy_missing() -> str | None:
    return None if shutil.which("haproxy") else "haproxy is not installed (apt-get install haproxy; scripts/setup.sh)"


@dataclass
class HAProxyServer:
    workdir: Path
    port: int
    backend: str
    servers: dict[str, str]                        # server name -> host:port
    weights: dict[str, int] = field(default_factory=dict)  # initial weight (default 1)
    listen: str = "127.0.0.1"
    health_path: str = "/health"
    start_timeout_s: float = 15.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return Path(self.workdir) / "admin.sock"

    @property
    def url(self) -> str:
        return f"http://{self.listen}:{self.port}"

    def config(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin",
            f"    pidfile {Path(self.workdir) / 'haproxy.pid'}",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 10s",
            "    timeout server 10s",
            # A connection refused by a server that just left is retried on another one.
            "    retries 2",
            "    option redispatch",
            f"frontend {self.backend}_in",
            f"    bind {self.listen}:{self.port}",
            f"    default_backend {self.backend}",
            f"backend {self.backend}",
            "    balance roundrobin",
            f"    option httpchk GET {self.health_path}",
        ]
        for name, addr in self.servers.items():
            lines.append(f"    server {name} {addr} check inter 200ms fall 2 rise 2 weight {self.weights.get(name, 1)}")
        return "\n".join(lines) + "\n"

    def start(self) -> HAProxyServer:
        workdir = Path(self.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(self.config())
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"haproxy rejected {cfg}: {check.stderr.strip() or check.stdout.strip()}")
        log = (workdir / "haproxy.log").open("ab")
        # -db: stay in the foreground (we own the process and stop it by pid).
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"haproxy exited with {self.proc.returncode}:\n{_tail(workdir / 'haproxy.log')}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise LabError(f"haproxy did not open {self.socket_path} within {self.start_timeout_s:.0f} s")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.socket_path))
                s.sendall(b"show info\n")
                return b"Name: HAProxy" in s.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _stop_pid(self.proc.pid, timeout_s=5)
            if _pid_alive(self.proc.pid):
                _stop_pid(self.proc.pid, timeout_s=5)
            self.proc = None
