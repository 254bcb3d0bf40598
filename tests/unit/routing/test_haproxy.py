"""HAProxy weights for a traffic share, and the parsing of `show servers state` (the live router
is exercised in tests/integration/test_haproxy_router.py)."""

from __future__ import annotations

import pytest

from stella_operators.routing import Route, RouterError
from stella_operators.routing.haproxy import HAProxyRouter, HAProxySettings

# `show servers state shop_web` as HAProxy 2.6 answers it (two servers; green-1 in maintenance, down)
STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 shop_web 1 blue-1 127.0.0.1 2 0 3 1 12 6 3 4 6 0 0 0 - 9001 - 0 0 - - 0
3 shop_web 2 green-1 127.0.0.1 0 1 0 1 12 6 3 4 6 0 0 0 - 9002 - 0 0 - - 0
"""


class Scripted(HAProxyRouter):
    def __init__(self, route: Route, answers: dict[str, str] | None = None):
        super().__init__(HAProxySettings(socket="/nonexistent", backend="shop_web"))
        self.route = route
        self.sent: list[str] = []
        self.answers = answers or {}

    def command(self, line: str) -> str:
        self.sent.append(line)
        return self.answers.get(line, "")


def shares(weights: dict[str, int], route: Route) -> dict[str, float]:
    total = sum(weights.values())
    return {g: 100 * sum(weights[s] for s in ss) / total for g, ss in route.groups.items()}


@pytest.mark.parametrize("blue,green,percent", [(1, 1, 10), (2, 2, 50), (3, 5, 10), (1, 4, 33), (7, 3, 1)])
def test_weights_give_the_share_asked_for(blue, green, percent):
    route = Route("shop_web", {"blue": tuple(f"b{i}" for i in range(blue)),
                               "green": tuple(f"g{i}" for i in range(green))})
    weights = Scripted(route).weights_for("green", percent)
    assert all(0 <= w <= 256 for w in weights.values())
    assert shares(weights, route)["green"] == pytest.approx(percent, abs=0.5)


def test_the_switch_raises_the_new_side_before_lowering_the_old():
    route = Route("shop_web", {"blue": ("b1",), "green": ("g1",)})
    router = Scripted(route)
    router.shift("green", 100)
    assert router.sent == ["set server shop_web/g1 weight 1", "set server shop_web/b1 weight 0"]


def test_refusals_and_bad_shares_are_errors():
    route = Route("shop_web", {"blue": ("b1",), "green": ("g1",)})
    router = Scripted(route, {"set server shop_web/g1 weight 1": "No such server.\n"})
    with pytest.raises(RouterError, match="No such server"):
        router.shift("green", 100)
    with pytest.raises(RouterError, match="0..100"):
        router.weights_for("green", 101)
    with pytest.raises(RouterError, match="line break"):
        HAProxyRouter.command(router, "show info\nshutdown")


def test_state_is_read_from_show_servers_state():
    route = Route("shop_web", {"blue": ("blue-1",), "green": ("green-1",)})
    router = Scripted(route, {"show servers state shop_web": STATE})
    assert router.distribution() == {"blue": 100, "green": 0}
    assert router.healthy("blue") == {"blue-1": True} and router.healthy("green") == {"green-1": False}
    assert router.validate() == []
    router.route = Route("shop_web", {"blue": ("blue-1",), "green": ("green-9",)})
    assert "has no server green-9" in router.validate()[0]
