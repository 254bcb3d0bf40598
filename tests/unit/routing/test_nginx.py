"""The `nginx` router's settings, its estate block, and its file handling (keep the previous file,
put it back when nginx refuses, switch back by rename) with a stand-in nginx command; the real
nginx is exercised in tests/integration/test_nginx_router.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from stella_operators.estate import EstateError, load_estate
from stella_operators.routing import Route, RouterError
from stella_operators.routing.nginx import ROUTER_TYPE, NginxRouter, NginxSettings
from stella_operators.routing.nginx_upstream import ServerState, render_upstream
from stella_operators.routing.registry import RouterSettingsError, validate_router_settings
from tests.fixtures.routers import ensure_router_type

ROUTE = Route("shop_web", {"blue": ("b1",), "green": ("g1",)})
ADDRESSES = {"b1": "127.0.0.1:9001", "g1": "127.0.0.1:9002"}


def fake_nginx(tmp_path: Path, stderr: str = "", status: int = 0) -> str:
    """A stand-in for the nginx binary: prints `stderr`, exits with `status` (any arguments)."""
    path = tmp_path / f"nginx-{status}"
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{stderr}' >&2\nexit {status}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def router(tmp_path: Path, nginx: str, configure: bool = True, **extra) -> NginxRouter:
    upstream = tmp_path / "upstream.conf"
    if not upstream.exists():
        upstream.write_text(render_upstream("shop_web", [ServerState("b1", ADDRESSES["b1"], weight=1),
                                                         ServerState("g1", ADDRESSES["g1"])]))
    r = NginxRouter(NginxSettings(upstream_file=str(upstream), backend="shop_web", config=str(tmp_path / "n.conf"),
                                  nginx=nginx, addresses={**ADDRESSES, **extra.pop("addresses", {})}, **extra))
    if configure:
        r.configure(ROUTE)
    else:
        r.route = ROUTE
    return r


def test_settings_refuse_what_nginx_could_not_use():
    good = {"upstream_file": "/etc/nginx/stella/shop.conf", "backend": "shop_web", "addresses": ADDRESSES}
    assert NginxSettings.model_validate(good).max_weight == 100
    for bad, where in [({"addresses": {}}, "addresses"), ({"addresses": {"b1": "10.0.0.1"}}, "addresses.b1"),
                       ({"addresses": {"b1": "10.0.0.1:70000"}}, "addresses"),
                       ({"upstream_file": "shop.conf"}, "upstream_file"), ({"max_weight": 0}, "max_weight"),
                       ({"health_path": "health"}, "health_path"), ({"pidfile": "/run/nginx.pid"}, "pidfile")]:
        with pytest.raises(ValidationError) as exc:
            NginxSettings.model_validate({**good, **bad})
        assert ".".join(map(str, exc.value.errors()[0]["loc"])) == where, bad


def test_a_shift_keeps_the_previous_file_and_switching_back_is_a_rename(tmp_path):
    r = router(tmp_path, fake_nginx(tmp_path))
    before = r.path.read_text()
    r.shift("green", 100)
    assert r.distribution() == {"blue": 0, "green": 100} and r.reloads == 1
    assert r.previous_path.read_text() == before and r.loaded_path.read_text() == r.path.read_text()
    green = r.path.read_text()
    inode = os.stat(r.previous_path).st_ino
    r.shift("blue", 100)                              # the file before the last shift: swapped back
    assert r.path.read_text() == before and os.stat(r.path).st_ino == inode
    assert r.previous_path.read_text() == green and r.reloads == 2
    r.shift("blue", 100)                              # nothing to change: no reload
    assert r.reloads == 2


def test_a_refused_file_is_put_back_and_the_error_quotes_nginx(tmp_path):
    r = router(tmp_path, fake_nginx(tmp_path))
    r.shift("green", 50)
    files = (r.path.read_text(), r.previous_path.read_text())
    refusing = router(tmp_path, fake_nginx(tmp_path, '2026/11/30 05:26:57 [emerg] 12#12: host not found in '
                                                     'upstream "nope.invalid:80" in /x/upstream.conf:5', 1),
                      configure=False)  # configure would refuse it already (its validate runs `nginx -t`)
    with pytest.raises(RouterError) as exc:
        refusing.shift("green", 100)
    message = str(exc.value)
    assert message.startswith(f"nginx ({r.path}, upstream shop_web): `nginx -t` refused the upstream for 100 % "
                              "to green: [emerg] host not found in upstream \"nope.invalid:80\"")
    assert "is back as it was and nginx still runs it" in message
    assert (r.path.read_text(), r.previous_path.read_text()) == files and refusing.reloads == 0
    with pytest.raises(RouterError, match="`nginx -t` refuses the configuration as it is: .emerg. host not found"):
        refusing.configure(ROUTE)


def test_a_file_edited_by_hand_is_reported_not_overwritten(tmp_path):
    r = router(tmp_path, fake_nginx(tmp_path))
    r.shift("green", 10)
    r.path.write_text(r.path.read_text().replace("weight=9;", "weight=1;"))
    with pytest.raises(RouterError, match=r"upstream.conf:\d+: the nginx directive does not match"):
        r.distribution()
    with pytest.raises(RouterError, match="does not match"):
        r.shift("green", 50)
    # a consistent edit nobody loaded: the file is not what nginx runs
    r.path.write_text(render_upstream("shop_web", [ServerState("b1", ADDRESSES["b1"], weight=1),
                                                   ServerState("g1", ADDRESSES["g1"], weight=1)]))
    with pytest.raises(RouterError, match="differs from what stella last loaded into nginx"):
        r.distribution()
    assert "differs from what stella last loaded" in r.validate()[0]


def test_configure_and_disable(tmp_path):
    r = router(tmp_path, fake_nginx(tmp_path))
    with pytest.raises(RouterError, match="no address for server g9 .add it to the router settings' addresses"):
        r.configure(Route("shop_web", {"blue": ("b1",), "green": ("g9",)}))
    with pytest.raises(RouterError, match="the route is for backend shop_api"):
        r.configure(Route("shop_api", ROUTE.groups))
    missing = NginxRouter(NginxSettings(upstream_file=str(tmp_path / "gone.conf"), backend="shop_web",
                                        addresses=ADDRESSES, nginx=fake_nginx(tmp_path)))
    with pytest.raises(RouterError, match="cannot read .*gone.conf: No such file"):
        missing.configure(ROUTE)
    r.disable("blue")
    assert "weight=1 down;  # stella: name=b1 weight=1 maint" in r.path.read_text()
    assert r.distribution() == {"blue": 0, "green": 0} and r.healthy("blue") == {"b1": False}
    r.enable("blue")
    assert r.distribution() == {"blue": 100, "green": 0}


ESTATE = """
version: 1
registries: [{host: "reg.local:5000", scheme: http}]
apps:
  - name: shop
    components:
      - {name: web, repository: reg.local:5000/demo/web}
environments:
  - name: live
    strategy: blue_green
    blue_green:
      router:
        type: nginx
        settings:
          upstream_file: /etc/nginx/stella/shop_web.conf
          backend: shop_web
          addresses: {b1: "10.0.0.11:8080", g1: "10.0.0.21:8080"}
          pid_file: /run/nginx.pid
          health_path: /health
    targets:
      - {name: b1, type: docker, connection: c1, group: blue}
      - {name: g1, type: docker, connection: c2, group: green}
"""


def test_an_estate_with_an_nginx_router_validates_and_points_at_bad_settings(tmp_path, monkeypatch):
    ensure_router_type(monkeypatch, ROUTER_TYPE)
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    env = load_estate(path).environment("live")
    assert env.blue_green is not None and env.blue_green.router.type == "nginx"
    settings = validate_router_settings("nginx", dict(env.blue_green.router.settings))
    assert isinstance(settings, NginxSettings) and settings.pid_file == "/run/nginx.pid"
    for old, new, where in [
            ('g1: "10.0.0.21:8080"', 'g1: "10.0.0.21"', "addresses.g1: String should match pattern"),
            ("pid_file:", "pidfile:", "pidfile: unknown key"),
            ("backend: shop_web", "backend: 'shop web'", "backend: String should match pattern")]:
        path.write_text(ESTATE.replace(old, new))
        with pytest.raises(EstateError) as exc:
            load_estate(path)
        assert f"environments[0].blue_green.router.settings.{where}" in str(exc.value), str(exc.value)
    with pytest.raises(RouterSettingsError) as err:
        validate_router_settings("nginx", {"backend": "shop_web", "addresses": ADDRESSES})
    assert err.value.path == "upstream_file" and err.value.message == "Field required"
