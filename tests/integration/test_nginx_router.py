"""The `nginx` router against a real nginx (Debian nginx-light 1.22) in front of real HTTP servers:
three metrics apps (devstack/metrics_app.py) answering "ok from blue" / "ok from green", so the
tests measure where requests really went. One nginx and one set of apps for the module; each test
starts from all traffic on blue."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from devstack.metrics_app import start_metrics_app
from devstack.nginx import NginxServer, nginx_missing
from devstack.waiting import wait_until
from stella_operators.routing import Route, RouterError
from stella_operators.routing.nginx import ROUTER_TYPE, NginxRouter, NginxSettings
from stella_operators.routing.nginx_upstream import ServerState, render_upstream
from stella_operators.routing.registry import build_router
from tests.fixtures.routers import ensure_router_type

pytestmark = pytest.mark.skipif(nginx_missing() is not None, reason=nginx_missing() or "")

ROUTE = Route(backend="shop_web", groups={"blue": ("blue-1", "blue-2"), "green": ("green-1",)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    apps = {}
    proxy = None
    try:
        for name in ROUTE.servers():
            apps[name] = start_metrics_app(free_port(), name.split("-")[0])
        addresses = {n: app.url.removeprefix("http://") for n, app in apps.items()}
        addresses["spare"] = f"127.0.0.1:{free_port()}"     # nothing listens there
        first = render_upstream("shop_web", [ServerState(n, a, weight=1 if n.startswith("blue") else 0)
                                             for n, a in addresses.items()])
        proxy = NginxServer(tmp_path_factory.mktemp("nginx"), port=free_port(), upstream=first).start()
        yield proxy, addresses
    finally:
        if proxy is not None:
            proxy.stop()
        for app in apps.values():
            app.stop()


@pytest.fixture()
def router(lab):
    proxy, addresses = lab
    r = NginxRouter(NginxSettings.model_validate(proxy.router_settings(addresses)))
    r.configure(ROUTE)
    r.enable("blue")
    r.shift("blue", 100)
    return r


def get(proxy: NginxServer) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def green_share(proxy: NginxServer, n: int = 200) -> float:
    answers = [get(proxy) for _ in range(n)]
    assert all(status == 200 for status, _ in answers), answers[:5]
    return 100 * sum(body == "ok from green" for _, body in answers) / n


def test_shift_gives_the_configured_split_of_real_requests(lab, router):
    proxy, _ = lab
    assert router.distribution() == {"blue": 100, "green": 0}
    for percent in (10, 50, 100):
        reloads = proxy.reloads()
        router.shift("green", percent)
        assert proxy.reloads() == reloads + 1        # nginx's own log: one reload per shift
        assert router.distribution() == {"green": percent, "blue": 100 - percent}
        share = green_share(proxy)
        assert abs(share - percent) <= 5, (percent, share)


def test_a_bad_address_is_refused_by_nginx_and_the_previous_upstream_still_serves(lab, router):
    proxy, addresses = lab
    router.shift("green", 50)
    before, reloads = router.path.read_text(), proxy.reloads()
    typo = NginxRouter(NginxSettings.model_validate(
        proxy.router_settings({**addresses, "green-1": "green-1.invalid:8080"})))
    typo.route = ROUTE   # configure() would pass (nginx accepts the file as it is); the write is what fails
    with pytest.raises(RouterError) as exc:
        typo.shift("green", 100)
    message = str(exc.value)
    assert f"nginx ({router.path}, upstream shop_web): `nginx -t` refused the upstream for 100 % to green" in message
    assert 'host not found in upstream "green-1.invalid:8080"' in message
    assert "is back as it was and nginx still runs it" in message
    assert router.path.read_text() == before and proxy.reloads() == reloads
    assert router.distribution() == {"blue": 50, "green": 50}
    assert abs(green_share(proxy, 100) - 50) <= 5


def test_switch_back_is_one_reload_and_loses_no_request_under_traffic(lab, router):
    proxy, _ = lab
    results: list[tuple[int, str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                results.append(get(proxy))
            except OSError as exc:
                errors.append(repr(exc))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(results) > 30, 10, "traffic before the switch", every=0.02)
        before_at = len(results)
        router.shift("green", 100)
        switched_at = len(results)
        wait_until(lambda: len(results) > switched_at + 50, 10, "traffic on green", every=0.02)
        reloads = proxy.reloads()
        green_until = len(results)
        t0 = time.monotonic()
        router.shift("blue", 100)                    # switch-back: the previous file, by rename
        elapsed = time.monotonic() - t0
        back_at = len(results)
        wait_until(lambda: len(results) > back_at + 50, 10, "traffic after the switch-back", every=0.02)
    finally:
        stop.set()
        thread.join(10)
    assert errors == [] and all(status == 200 for status, _ in results), (errors[:3], results[-3:])
    assert proxy.reloads() == reloads + 1
    assert elapsed < 1.0, f"switch-back took {elapsed:.3f} s"
    print(f"switch-back: {elapsed * 1000:.0f} ms, one reload")
    bodies = [body for _, body in results]
    # while a shift runs, requests go to either side; once it returned, a few are still in flight
    assert set(bodies[:before_at]) == {"ok from blue"}
    assert set(bodies[switched_at + 3:green_until]) == {"ok from green"}
    assert set(bodies[back_at + 3:]) == {"ok from blue"}
    assert router.distribution() == {"blue": 100, "green": 0}


def test_health_is_a_probe_from_here_and_maintenance_is_down(lab, router):
    proxy, _ = lab
    assert router.healthy("blue") == {"blue-1": True, "blue-2": True}
    router.shift("green", 100)
    router.disable("blue")
    assert router.healthy("blue") == {"blue-1": False, "blue-2": False}
    assert "name=blue-1 weight=0 maint" in router.path.read_text()
    assert green_share(proxy, 20) == 100
    router.enable("blue")
    assert router.healthy("blue") == {"blue-1": True, "blue-2": True}
    with_spare = NginxRouter(router.settings)
    with_spare.configure(Route("shop_web", {"blue": ("blue-1",), "green": ("green-1", "spare")}))
    assert with_spare.healthy("green") == {"green-1": True, "spare": False}
    http_probe = NginxRouter(router.settings.model_copy(update={"health_path": "/metrics"}))
    http_probe.configure(ROUTE)
    assert http_probe.healthy("green") == {"green-1": True}


def test_built_through_the_registry_and_refusing_what_nginx_lacks(lab, router, monkeypatch):
    proxy, addresses = lab
    ensure_router_type(monkeypatch, ROUTER_TYPE)
    r = build_router("nginx", {**proxy.router_settings(addresses), "pid_file": None})
    r.configure(ROUTE)
    assert r.validate() == []
    reloads = proxy.reloads()
    r.shift("green", 100)      # without pid_file: `nginx -s reload`, signalled but not confirmed
    wait_until(lambda: proxy.reloads() == reloads + 1, 5, "nginx reloading", every=0.02)
    wait_until(lambda: green_share(proxy, 20) == 100, 5, "new connections on the new workers", every=0.05)
    stopped = NginxRouter(NginxSettings.model_validate(proxy.router_settings(addresses, pid_file="/nonexistent")))
    with pytest.raises(RouterError, match="no running nginx master per /nonexistent"):
        stopped.configure(ROUTE)
