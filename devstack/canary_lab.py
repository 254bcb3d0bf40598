"""The canary lab (tests, benchmarks/canary_rollback.py): a real HAProxy or, separately, a real
nginx (`start_canary_lab(workdir, router=...)`; backend shop_web: server s1 in group stable, c1 in
group canary), a real Prometheus scraping both servers' ports every second, and metrics-app
processes (devstack/metrics_app.py) as the two versions of the app. `lab.router_block()` is the
estate's `router:` block for the proxy, `lab.port` where clients send requests.

The targets here are processes, not Docker hosts: `AppProcessTarget` runs the metrics app on its
server's fixed port, the version and error rate chosen by the digest it is told to run (VERSIONS).
They keep the Target contract the promotion services rely on (facts with sticker, prepare /
commit / restore); the router, the metrics and the traffic are the real things under test.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.haproxy import HAProxyServer
from devstack.metrics_app import MetricsApp, start_metrics_app
from devstack.nginx import NginxServer
from devstack.prometheus import PrometheusServer, start_prometheus
from devstack.registry import free_port
from stella_operators.routing.contract import Route, Router
from stella_operators.routing.haproxy import HAProxyRouter, HAProxySettings
from stella_operators.routing.nginx_upstream import ServerState, render_upstream
from stella_operators.routing.registry import build_router
from stella_operators.targets.contract import PreparedChange, RunningComponent, TargetFacts, TargetPlan, VersionSticker


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


# digest -> (version label, error rate) of the metrics app it stands for
VERSIONS = {digest(1): ("v1", 0.0), digest(2): ("v2", 0.0), digest(3): ("v2-bad", 0.2)}


@dataclass
class AppProcessTarget:
    name: str
    port: int
    running: str | None = None
    sticker: VersionSticker | None = None
    app: MetricsApp | None = field(default=None, repr=False)

    def _run(self, want: str | None) -> None:
        if self.app is not None:
            self.app.stop()
            self.app = None
        if want is not None:
            version, error_rate = VERSIONS[want]
            self.app = start_metrics_app(self.port, version, error_rate=error_rate)
        self.running = want

    def facts(self, app: str) -> TargetFacts:
        comps = {} if self.running is None else {
            "web": RunningComponent(component="web", digest=self.running, workload_id=str(self.port),
                                    workload_name=f"{self.name}-web")}
        return TargetFacts(target=self.name, app=app, components=comps, sticker=self.sticker)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        want = plan.components[0].component.digest
        if want == self.running:
            return PreparedChange(target=self.name, unchanged=["web"])
        return PreparedChange(target=self.name, started={"web": want},
                              to_retire={"web": [self.running] if self.running else []})

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if prepared.started:
            self._run(prepared.started["web"])
        self.sticker = plan.sticker

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        pass

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        want = previous.get("web")
        if want != self.running:
            self._run(want)
            self.sticker = None

    def finalize(self, plan: TargetPlan) -> None:
        pass

    def stop(self) -> None:
        self._run(None)


class Responses:
    """Sends GET / through the proxy from a thread at about `rps`, keeping (time sent, body) of each."""

    def __init__(self, port: int, rps: float = 50.0):
        self.port, self.interval = port, 1.0 / rps
        self.seen: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="canary traffic")

    def __enter__(self) -> Responses:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            sent = time.monotonic()
            self.seen.append((sent, *get(self.port)))


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    except OSError as exc:
        return 0, f"error: {exc}"
    finally:
        conn.close()


ROUTERS = ("haproxy", "nginx")
ROUTE = Route(backend="shop_web", groups={"stable": ("s1",), "canary": ("c1",)})


@dataclass
class CanaryLab:
    proxy: HAProxyServer | NginxServer
    prometheus: PrometheusServer | None
    stable: AppProcessTarget
    canary: AppProcessTarget
    router_type: str = "haproxy"

    @property
    def port(self) -> int:
        """Where clients send their requests (the proxy's listening port)."""
        return self.proxy.port

    def stop(self) -> None:
        self.stable.stop()
        self.canary.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.proxy.stop()

    def targets(self, config) -> AppProcessTarget:
        return {"s1": self.stable, "c1": self.canary}[config.name]

    def router_settings(self) -> dict[str, Any]:
        """The `settings:` of the estate's `router:` block for this lab's proxy."""
        if isinstance(self.proxy, NginxServer):
            addresses = {t.name: f"127.0.0.1:{t.port}" for t in (self.stable, self.canary)}
            # pid_file: the router confirms each reload (new workers up, old ones no longer accepting)
            return self.proxy.router_settings(addresses, health_path="/metrics")
        return {"socket": str(self.proxy.socket_path), "backend": "shop_web"}

    def router_block(self) -> str:
        """The estate's `router:` block (YAML flow style) for this lab."""
        return json.dumps({"type": self.router_type, "settings": self.router_settings()})

    def router(self) -> Router:
        return build_router(self.router_type, self.router_settings())

    def timed(self, router: Router, back_at: list[float]) -> Router:
        """`router` noting in `back_at` when a shift of all traffic back to the stable group has
        RETURNED: HAProxy applied the weights; nginx (pid_file set) reloaded with its new workers
        up and the old ones no longer accepting. A request sent after that is a new request."""
        shift = router.shift

        def timed_shift(group: str, percent: int) -> None:
            shift(group, percent)
            if group == "stable" and percent == 100:
                back_at.append(time.monotonic())

        router.shift = timed_shift  # type: ignore[method-assign]
        return router

    def reset(self) -> None:
        """v1 on the stable server with all the traffic, nothing on the canary server (out of service)."""
        self.canary.stop()
        self.canary.sticker = None
        if self.stable.running != digest(1):
            self.stable._run(digest(1))
        if isinstance(self.proxy, NginxServer):
            router = self.router()
            router.configure(ROUTE)
            router.enable("stable")
            router.shift("stable", 100)
            router.disable("canary")
            return
        haproxy = HAProxyRouter(HAProxySettings(socket=str(self.proxy.socket_path), backend="shop_web"))
        for line in ("set server shop_web/s1 state ready", "set server shop_web/s1 weight 1",
                     "set server shop_web/c1 weight 0", "set server shop_web/c1 state maint"):
            haproxy.command(line)


def start_canary_lab(workdir: Path, router: str = "haproxy") -> CanaryLab:
    """Start the proxy (`router`: haproxy or nginx) and Prometheus (the caller stops them with
    `lab.stop()`, also on failure)."""
    if router not in ROUTERS:
        raise ValueError(f"router {router!r}: the canary lab runs one of {', '.join(ROUTERS)}")
    ports = {"s1": free_port(), "c1": free_port()}
    stable, canary = AppProcessTarget("s1", ports["s1"]), AppProcessTarget("c1", ports["c1"])
    servers = {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    proxy: HAProxyServer | NginxServer
    if router == "nginx":
        first = render_upstream("shop_web", [ServerState("s1", servers["s1"], weight=1),
                                             ServerState("c1", servers["c1"], weight=0, maint=True)])
        proxy = NginxServer(workdir / "nginx", port=free_port(), upstream=first, backend="shop_web")
    else:
        proxy = HAProxyServer(workdir / "haproxy", port=free_port(), backend="shop_web", servers=servers,
                              weights={"c1": 0}, health_path="/metrics")
    lab = CanaryLab(proxy, None, stable, canary, router)
    try:
        proxy.start()
        lab.prometheus = start_prometheus(workdir / "prometheus", list(servers.values()), port=free_port())
        lab.reset()
        # Prometheus applies its targets a few seconds after it starts (discovery updates are
        # throttled): until then nothing is scraped, and every query is "no data".
        lab.prometheus.wait_for_series(f'up{{instance="{servers["s1"]}"}} == 1')
    except BaseException:
        lab.stop()
        raise
    return lab
