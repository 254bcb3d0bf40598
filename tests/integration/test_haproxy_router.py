"""The `haproxy` router against a real HAProxy (Debian 2.6) in front of real HTTP servers.

Each backend server is a small threaded HTTP server in this process that answers its own name, so
the tests measure where requests really went.
"""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.haproxy import HAProxyServer, haproxy_missing
from devstack.waiting import wait_until
from stella_operators.routing import Route, RouterError
from stella_operators.routing.haproxy import HAProxyRouter, HAProxySettings
from stella_operators.routing.registry import RouterSettingsError, build_router, validate_router_settings

pytestmark = pytest.mark.skipif(haproxy_missing() is not None, reason=haproxy_missing() or "")


class Backend:
    """An HTTP server answering `name` on every path; `/health` fails while `sick` is set."""

    def __init__(self, name: str):
        self.name = name
        self.sick = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                status = 500 if self.path == "/health" and backend.sick.is_set() else 200
                body = backend.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def proxy(tmp_path):
    backends = {n: Backend(n) for n in ("blue-1", "blue-2", "green-1", "green-2")}
    server = HAProxyServer(tmp_path / "haproxy", port=free_port(), backend="shop_web",
                           servers={n: b.addr for n, b in backends.items()},
                           weights={"green-1": 0, "green-2": 0})
    try:
        server.start()
        yield server, backends
    finally:
        server.stop()
        for b in backends.values():
            b.stop()


ROUTE = Route(backend="shop_web", groups={"blue": ("blue-1", "blue-2"), "green": ("green-1", "green-2")})


def router_for(server: HAProxyServer) -> HAProxyRouter:
    router = HAProxyRouter(HAProxySettings(socket=str(server.socket_path), backend="shop_web"))
    router.configure(ROUTE)
    return router


def get(server: HAProxyServer) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def all_up(router: HAProxyRouter) -> bool:
    return all(router.healthy("blue").values()) and all(router.healthy("green").values())


def test_configure_refuses_a_route_with_servers_the_backend_lacks(proxy):
    server, _ = proxy
    router = HAProxyRouter(HAProxySettings(socket=str(server.socket_path), backend="shop_web"))
    with pytest.raises(RouterError, match="has no server green-3"):
        router.configure(Route(backend="shop_web", groups={"blue": ("blue-1",), "green": ("green-3",)}))
    broken = HAProxyRouter(HAProxySettings(socket=str(server.socket_path) + ".gone", backend="shop_web"))
    with pytest.raises(RouterError, match="show servers state shop_web"):
        broken.configure(ROUTE)


def test_shift_gives_the_configured_split_of_real_requests(proxy):
    server, _ = proxy
    router = router_for(server)
    wait_until(lambda: all_up(router), 10, "every server up", every=0.1)
    assert router.distribution() == {"blue": 100, "green": 0}
    for percent in (10, 50, 100):
        router.shift("green", percent)
        assert router.distribution() == {"green": percent, "blue": 100 - percent}
        answers = [get(server) for _ in range(200)]
        assert all(status == 200 for status, _ in answers)
        share = 100 * sum(body.startswith("green") for _, body in answers) / 200
        assert abs(share - percent) <= 5, (percent, share)


def test_a_switch_under_continuous_traffic_loses_no_request(proxy):
    server, _ = proxy
    router = router_for(server)
    wait_until(lambda: all_up(router), 10, "every server up", every=0.1)
    results: list[tuple[int, str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                results.append(get(server))
            except OSError as exc:
                errors.append(str(exc))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: len(results) > 50, 10, "traffic before the switch", every=0.05)
        router.shift("green", 100)
        switched_at = len(results)
        wait_until(lambda: len(results) > switched_at + 100, 10, "traffic after the switch", every=0.05)
        router.disable("blue")        # the old set leaves service
        left_at = len(results)
        wait_until(lambda: len(results) > left_at + 100, 10, "traffic after blue left", every=0.05)
    finally:
        stop.set()
        thread.join(10)
    assert errors == [] and all(status == 200 for status, _ in results)
    assert {body for _, body in results[:switched_at]} <= {"blue-1", "blue-2"}
    assert {body for _, body in results[switched_at + 5:]} == {"green-1", "green-2"}
    assert router.distribution() == {"blue": 0, "green": 100}


def test_health_is_read_from_haproxys_own_checks(proxy):
    server, backends = proxy
    router = router_for(server)
    wait_until(lambda: all_up(router), 10, "every server up", every=0.1)
    backends["green-2"].sick.set()
    wait_until(lambda: not router.healthy("green")["green-2"], 10, "green-2 seen down", every=0.1)
    assert router.healthy("green") == {"green-1": True, "green-2": False}
    router.disable("blue")
    assert router.healthy("blue") == {"blue-1": False, "blue-2": False}
    router.enable("blue")
    wait_until(lambda: all(router.healthy("blue").values()), 10, "blue back in service", every=0.1)


def test_router_settings_are_validated_and_built_through_the_registry(proxy):
    server, _ = proxy
    with pytest.raises(RouterSettingsError) as exc:
        validate_router_settings("haproxy", {"socket": "/x", "backend": "b", "sokcet": "/y"})
    assert exc.value.path == "sokcet" and exc.value.message == "unknown key"
    with pytest.raises(RouterSettingsError, match="no installed router type 'f5'"):
        validate_router_settings("f5", {})
    router = build_router("haproxy", {"socket": str(server.socket_path), "backend": "shop_web"})
    router.configure(ROUTE)
    assert router.validate() == []
