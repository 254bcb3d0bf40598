"""The canary's router steps over in-memory targets and router (the real HAProxy is in
tests/integration/test_canary_lab.py)."""

from __future__ import annotations

import pytest

from stella_operators.deploy.canary import CanaryError, abort_traffic, begin_canary, shift_to
from stella_operators.routing import Route
from tests.unit.deploy.memory import NEW, OLD, Board, HostInMemory, RouterInMemory, plan

ROUTE = Route(backend="web", groups={"stable": ("s1",), "canary": ("c1",)})


def world(**router_kw):
    board = Board()
    ts = {n: HostInMemory(n, board) for n in ("s1", "c1")}
    router = RouterInMemory({"s1": 100, "c1": 0}, **router_kw)
    groups = {"stable": [(ts["s1"], plan("s1"))], "canary": [(ts["c1"], plan("c1"))]}
    return ts, router, groups


def test_begin_deploys_the_idle_group_and_gives_it_no_traffic():
    ts, router, groups = world()
    noted = []
    out = begin_canary(groups, router, ROUTE, sleep=lambda s: None, on_begin=lambda g, p: noted.append((g, p)))
    assert out.ok and (out.group, out.previous_group) == ("canary", "stable")
    assert noted == [("canary", "stable")]       # recorded before anything changed
    assert ts["c1"].running == {"web": NEW} and ts["s1"].calls == []
    assert router.distribution() == {"stable": 100, "canary": 0}
    assert router.log == ["shift canary 0", "enable canary"]   # weight 0 before it enters service


def test_begin_refuses_while_both_groups_serve():
    ts, router, groups = world()
    router.weights = {"s1": 50, "c1": 50}
    with pytest.raises(CanaryError, match="canary still receives 50 %"):
        begin_canary(groups, router, ROUTE, sleep=lambda s: None)
    assert ts["c1"].calls == []


def test_a_new_group_never_seen_healthy_is_restored_and_gets_no_traffic():
    ts, router, groups = world(never_healthy={"c1"})
    out = begin_canary(groups, router, ROUTE, ready_timeout_s=0.01, poll_s=0.001, sleep=lambda s: None)
    assert out.status == "rolled_back" and "c1 not seen healthy" in out.error
    assert ts["c1"].running == {"web": OLD} and router.distribution() == {"stable": 100, "canary": 0}


def test_shift_reads_back_and_abort_puts_everything_on_the_previous_group():
    ts, router, groups = world()
    begin_canary(groups, router, ROUTE, sleep=lambda s: None)
    assert shift_to(router, ROUTE, "canary", 10, "stable") == {"stable": 90, "canary": 10}
    assert abort_traffic(router, ROUTE, "canary", "stable") == {"stable": 100, "canary": 0}
    assert router.log[-2:] == ["shift stable 100", "disable canary"]


def test_with_nothing_serving_before_the_first_step_takes_all_the_traffic():
    ts, router, groups = world()
    router.weights = {"s1": 0, "c1": 0}
    out = begin_canary(groups, router, ROUTE, sleep=lambda s: None)
    assert out.previous_group is None
    assert shift_to(router, ROUTE, out.group, 10, None)[out.group] == 100
