"""A real nginx for tests and the demo: its own configuration, pid file, logs and temp paths in
`workdir`, one port, and an upstream file the `nginx` router owns.

    proxy = NginxServer(workdir, port=18080, upstream=render_upstream("shop_web", [...]))
    proxy.start()        # -> waits until the port accepts connections
    proxy.reloads()      # how many reloads nginx has done (from its error log)
    proxy.stop()         # by pid; safe to call twice

`proxy.router_settings(addresses)` gives the matching `nginx` router settings.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.hosts import LabError, _pid_alive, _stop_pid, _tail


def nginx_missing() -> str | None:
    return None if shutil.which("nginx") else "nginx is not installed (apt-get install nginx-light; scripts/setup.sh)"


@dataclass
class NginxServer:
    workdir: Path
    port: int
    upstream: str                  # the upstream file's first content (render_upstream)
    backend: str = "shop_web"
    listen: str = "127.0.0.1"
    start_timeout_s: float = 15.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return Path(self.workdir) / "nginx.conf"

    @property
    def upstream_path(self) -> Path:
        return Path(self.workdir) / "upstream" / f"{self.backend}.conf"

    @property
    def pid_path(self) -> Path:
        return Path(self.workdir) / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return Path(self.workdir) / "error.log"

    @property
    def url(self) -> str:
        return f"http://{self.listen}:{self.port}"

    def config(self) -> str:
        w = Path(self.workdir)
        temps = "".join(f"    {kind}_temp_path {w / 'tmp' / kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (
            "worker_processes 1;\n"
            f"pid {self.pid_path};\n"
            # notice: each reload is logged ("reconfiguring"), which reloads() counts
            f"error_log {self.error_log} notice;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            "    access_log off;\n"
            f"{temps}"
            f"    include {self.upstream_path};\n"
            "    server {\n"
            f"        listen {self.listen}:{self.port};\n"
            "        location / {\n"
            f"            proxy_pass http://{self.backend};\n"
            "            proxy_connect_timeout 2s;\n"
            # a connection refused by a server that just left is retried on another one
            "            proxy_next_upstream error timeout;\n"
            "        }\n"
            "    }\n"
            "}\n")

    def router_settings(self, addresses: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {"upstream_file": str(self.upstream_path), "backend": self.backend, "addresses": addresses,
                "config": str(self.config_path), "pid_file": str(self.pid_path), **extra}

    def _nginx(self, *args: str) -> list[str]:
        return ["nginx", "-e", str(self.error_log), "-c", str(self.config_path), *args]

    def start(self) -> NginxServer:
        w = Path(self.workdir)
        (w / "tmp").mkdir(parents=True, exist_ok=True)
        self.upstream_path.parent.mkdir(parents=True, exist_ok=True)
        self.upstream_path.write_text(self.upstream)
        self.config_path.write_text(self.config())
        check = subprocess.run(self._nginx("-t", "-q"), capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"nginx rejected {self.config_path}: {check.stderr.strip() or _tail(self.error_log)}")
        log = (w / "nginx.out").open("ab")
        # daemon off: stay in the foreground (we own the process and stop it by pid)
        self.proc = subprocess.Popen(self._nginx("-g", "daemon off;"), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"nginx exited with {self.proc.returncode}:\n{_tail(self.error_log)}")
            if self.pid_path.exists() and self._accepts():
                return self
            time.sleep(0.02)
        self.stop()
        raise LabError(f"nginx did not listen on {self.listen}:{self.port} within {self.start_timeout_s:.0f} s")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.listen, self.port), timeout=1):
                return True
        except OSError:
            return False

    def reloads(self) -> int:
        """Reloads nginx has done since start (its master logs "reconfiguring" for each)."""
        try:
            text = self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(line.endswith(": reconfiguring") for line in text.splitlines())

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)   # fast shutdown: master and workers
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _stop_pid(self.proc.pid, timeout_s=5)
            if _pid_alive(self.proc.pid):
                _stop_pid(self.proc.pid, timeout_s=5)
            self.proc = None
