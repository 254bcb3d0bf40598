"""A host's service port for the lab, standing in for a published container port.

The docker target starts containers without published ports (issue 8, capability 2, adds them), so
a router cannot reach "the app on host X" at a fixed address. `ServicePort` gives each lab host
one: it listens on 127.0.0.1:PORT in the root namespace and forwards each connection to the
newest running, *healthy* container of the app on that host -- what a published port does for
the container that holds it. No healthy container: the connection is closed at once (the router's
health check then sees the server down, as it would see a host whose port nothing listens on).

`route_to_containers(host)` makes the host's container network reachable from the root namespace
(a route via the host's address, and an ACCEPT in the host's DOCKER-USER chain); undone by the
returned function (the namespace's rules die with it anyway).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
from devstack.hosts import DockerHost


def route_to_containers(host: DockerHost, client: docker.APIClient) -> Callable[[], None]:
    subnet = client.inspect_network("bridge")["IPAM"]["Config"][0]["Subnet"]
    subprocess.run(["ip", "route", "replace", subnet, "via", host.ip], check=True, capture_output=True)
    subprocess.run(["ip", "netns", "exec", host.netns, "iptables", "-I", "DOCKER-USER", "-j", "ACCEPT"],
                   check=True, capture_output=True)

    def undo() -> None:
        subprocess.run(["ip", "route", "del", subnet, "via", host.ip], check=False, capture_output=True)
    return undo


class ServicePort:
    def __init__(self, client: docker.APIClient, app: str, *, container_port: int = 8080,
                 refresh_s: float = 0.1):
        self.client, self.app, self.container_port, self.refresh_s = client, app, container_port, refresh_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.upstream: str | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._watch, daemon=True)]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServicePort:
        self._resolve()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def _resolve(self) -> None:
        try:
            found: list[dict[str, Any]] = self.client.containers(filters={"label": f"stella.app={self.app}",
                                                                          "status": "running"})
        except Exception:  # noqa: BLE001 - the engine is down: nothing to forward to
            self.upstream = None
            return
        healthy = sorted((c for c in found if "(healthy)" in (c.get("Status") or "")),
                         key=lambda c: c.get("Created", 0), reverse=True)
        if not healthy:
            self.upstream = None
            return
        nets = (healthy[0].get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)
        self.upstream = ip

    def _watch(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self._resolve()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        ip = self.upstream
        if ip is None:
            conn.close()
            return
        try:
            up = socket.create_connection((ip, self.container_port), timeout=2)
        except OSError:
            conn.close()
            return
        for s in (conn, up):
            s.settimeout(30)
        t = threading.Thread(target=_pump, args=(up, conn), daemon=True)
        t.start()
        _pump(conn, up)
        t.join(timeout=30)
        for s in (conn, up):
            s.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def wait_serving(port: ServicePort, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port.upstream:
            return
        time.sleep(0.1)
    raise TimeoutError(f"no healthy container of {port.app} behind {port.address} within {timeout_s:.0f} s")
