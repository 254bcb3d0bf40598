"""The upstream file of the `nginx` router: rendering, parsing (refusing hand edits) and the
weights of a split (the live nginx is exercised in tests/integration/test_nginx_router.py)."""

from __future__ import annotations

import pytest

from stella_operators.routing import Route
from stella_operators.routing.nginx_upstream import (
    ServerState,
    UpstreamError,
    parse_upstream,
    render_upstream,
    shares,
    split_weights,
)

SERVERS = [ServerState("blue-1", "10.0.0.11:8080", weight=9), ServerState("green-1", "10.0.0.21:8080"),
           ServerState("green-2", "[::1]:8081", weight=3, maint=True)]


def test_a_server_without_share_or_in_maintenance_is_down_never_weight_0():
    text = render_upstream("shop_web", SERVERS)
    assert "    server 10.0.0.11:8080 weight=9;  # stella: name=blue-1 weight=9\n" in text
    assert "    server 10.0.0.21:8080 weight=1 down;  # stella: name=green-1 weight=0\n" in text
    assert "    server [::1]:8081 weight=3 down;  # stella: name=green-2 weight=3 maint\n" in text
    assert "weight=0" not in text.replace("# stella: name=green-1 weight=0", "")   # nginx refuses weight=0
    assert text.startswith("# Written by stella-operators") and text.rstrip().endswith("}")


def test_parse_reads_back_what_render_wrote():
    parsed = parse_upstream(render_upstream("shop_web", SERVERS), "shop_web", "u.conf")
    assert list(parsed.values()) == SERVERS
    assert [s.serves for s in parsed.values()] == [True, False, False]


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("weight=9;", "weight=5;"), r"u.conf:4: the nginx directive does not match"),
    (lambda t: t.replace("weight=1 down;", "weight=1;"), r"u.conf:5: the nginx directive does not match"),
    (lambda t: t.replace("upstream shop_web", "upstream shop_api"), r"u.conf:3: expected `upstream shop_web \{`"),
    (lambda t: t.replace("}\n", "    keepalive 8;\n}\n"), r"u.conf:7: not a server line written by stella"),
    (lambda t: t.replace("}\n", ""), r"no complete `upstream shop_web"),
    (lambda t: t.replace("name=blue-1 ", ""), r"unreadable `# stella:` comment"),
    (lambda t: t.replace("green-1", "blue-1"), r"server blue-1 appears twice"),
])
def test_a_file_edited_by_hand_is_refused_with_the_line(edit, message):
    with pytest.raises(UpstreamError, match=message):
        parse_upstream(edit(render_upstream("shop_web", SERVERS)), "shop_web", "u.conf")


def _percent(weights: dict[str, int], route: Route) -> dict[str, float]:
    total = sum(weights.values())
    return {g: 100 * sum(weights[s] for s in ss) / total for g, ss in route.groups.items()}


@pytest.mark.parametrize("blue,green,percent,max_weight", [
    (1, 1, 10, 100), (2, 1, 10, 100), (3, 5, 33, 100), (1, 4, 1, 1000), (7, 3, 99, 1000), (2, 2, 50, 1)])
def test_weights_give_the_share_asked_for(blue, green, percent, max_weight):
    route = Route("shop_web", {"blue": tuple(f"b{i}" for i in range(blue)),
                               "green": tuple(f"g{i}" for i in range(green))})
    weights = split_weights(route, "green", percent, max_weight)
    assert all(0 < w <= max_weight for w in weights.values())
    # the rounding when the exact weights do not fit stays within 1 % for these
    assert _percent(weights, route)["green"] == pytest.approx(percent, abs=1)


def test_max_weight_is_the_granularity_of_a_split():
    route = Route("shop_web", {"blue": ("b1",), "green": ("g1", "g2", "g3", "g4")})
    # 1 % to four green servers needs blue at 396 for green's 1 each: over 100 it is rounded
    assert _percent(split_weights(route, "green", 1, 100), route)["green"] == pytest.approx(3.85, abs=0.01)
    assert _percent(split_weights(route, "green", 1, 400), route)["green"] == pytest.approx(1, abs=0.01)


def test_0_and_100_percent_leave_one_side_without_share():
    route = Route("shop_web", {"blue": ("b1", "b2"), "green": ("g1",)})
    assert split_weights(route, "green", 100, 100) == {"b1": 0, "b2": 0, "g1": 1}
    assert split_weights(route, "green", 0, 100) == {"b1": 1, "b2": 1, "g1": 0}
    assert split_weights(route, "green", 10, 100) == {"b1": 9, "b2": 9, "g1": 2}


def test_shares_count_only_servers_nginx_sends_requests_to():
    route = Route("shop_web", {"blue": ("blue-1",), "green": ("green-1", "green-2")})
    servers = {s.name: s for s in SERVERS}
    assert shares(route, servers) == {"blue": 100, "green": 0}
    servers["other"] = ServerState("other", "10.0.0.99:80", weight=9)    # outside the route: takes its share
    assert shares(route, servers) == {"blue": 50, "green": 0}
    assert shares(route, {"green-1": ServerState("green-1", "a:1")}) == {"blue": 0, "green": 0}
