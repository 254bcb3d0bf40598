"""The demo's canary front: a real HAProxy in front of an environment's hosts, a real Prometheus
scraping them, and a steady stream of requests through HAProxy (so a canary has traffic to judge).

    front = start_front(state / "front", {"prod-1": "10.201.0.6:8080", "prod-2": "10.201.0.7:8080"})
    ...
    stop_front(state / "front")   # by pid files: works from another process (`devstack down`)

Each process writes a pid file under its directory and outlives the caller (the demo's `devstack
up` returns while they run). The hosts run the metrics web image (devstack/metrics_image.py):
the app under /cgi-bin/app, metrics under /cgi-bin/metrics.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.haproxy import HAProxyServer
from devstack.hosts import _pid_alive, _stop_pid
from devstack.metrics_app import TrafficDriver
from devstack.prometheus import start_prometheus

APP_PATH = "/cgi-bin/app"
METRICS_PATH = "/cgi-bin/metrics"
PID_FILES = ("traffic.pid", "prometheus/prometheus.pid", "haproxy/haproxy.pid")


@dataclass
class Front:
    proxy_url: str        # the app through HAProxy
    socket: Path          # HAProxy's admin socket (the router's `socket` setting)
    backend: str
    prometheus_url: str


def start_front(workdir: Path, servers: dict[str, str], *, backend: str = "shop_prod", port: int = 18080,
                prometheus_port: int = 9090, listen: str = "127.0.0.1", rps: float = 10.0,
                weights: dict[str, int] | None = None) -> Front:
    workdir = Path(workdir)
    stop_front(workdir)
    proxy = HAProxyServer(workdir / "haproxy", port=port, backend=backend, servers=servers,
                          weights=weights or {}, listen=listen).start()
    assert proxy.proc is not None
    # haproxy -db (foreground, owned by us) writes no pid file of its own
    (workdir / "haproxy" / "haproxy.pid").write_text(f"{proxy.proc.pid}\n")
    try:
        # Each host's series carry `target: <estate target name>`, which canary queries select on.
        prom = start_prometheus(workdir / "prometheus", list(servers.values()), host=listen, port=prometheus_port,
                                metrics_path=METRICS_PATH, labels={a: {"target": n} for n, a in servers.items()})
        log = (workdir / "traffic.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        traffic = subprocess.Popen([sys.executable, "-m", "devstack.canary_front", f"{proxy.url}{APP_PATH}",
                                    "--rps", str(rps)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        (workdir / "traffic.pid").write_text(f"{traffic.pid}\n")
    except BaseException:
        stop_front(workdir)
        raise
    return Front(proxy_url=proxy.url, socket=proxy.socket_path, backend=backend, prometheus_url=prom.url)


def stop_front(workdir: Path) -> None:
    for name in PID_FILES:
        pid_file = Path(workdir) / name
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            _stop_pid(pid, timeout_s=10)
        pid_file.unlink(missing_ok=True)


def main() -> None:
    """`python -m devstack.canary_front URL --rps N`: send requests until SIGTERM, a summary a minute."""
    ap = argparse.ArgumentParser(prog="python -m devstack.canary_front")
    ap.add_argument("url")
    ap.add_argument("--rps", type=float, default=10.0)
    a = ap.parse_args()
    driver = TrafficDriver(a.url, rps=a.rps).start()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(1)
        if int(time.time()) % 60 == 0:
            print(f"{time.strftime('%H:%M:%S')} sent {driver.sent}, failed {driver.failed}", flush=True)
    driver.stop()


if __name__ == "__main__":
    main()
