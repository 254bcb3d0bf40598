"""Blue-green over in-memory targets and an in-memory router (the real HAProxy tests are in
tests/integration/test_haproxy_router.py and test_strategies_lab.py)."""

from __future__ import annotations

from stella_operators.deploy.blue_green import live_group, retire_previous, run_blue_green, switch_back
from stella_operators.routing import Route
from tests.unit.deploy.memory import NEW, OLD, Board, HostInMemory, RouterInMemory, plan

ROUTE = Route(backend="web", groups={"blue": ("b1", "b2"), "green": ("g1", "g2")})


def world(**special):
    board = Board()
    ts = {n: HostInMemory(n, board, **special.get(n, {})) for n in ("b1", "b2", "g1", "g2")}
    router = RouterInMemory({"b1": 100, "b2": 100, "g1": 0, "g2": 0}, never_healthy=special.get("down", set()))
    groups = {"blue": [(ts["b1"], plan("b1")), (ts["b2"], plan("b2"))],
              "green": [(ts["g1"], plan("g1")), (ts["g2"], plan("g2"))]}
    return ts, router, groups


def test_deploys_to_the_idle_group_then_switches_in_one_step():
    ts, router, groups = world()
    out = run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    assert out.status == "deployed" and out.switched
    assert out.group == "green" and out.previous_group == "blue"
    assert ts["g1"].running == ts["g2"].running == {"web": NEW}
    assert ts["b1"].running == ts["b2"].running == {"web": OLD} and ts["b1"].calls == []   # never touched
    assert router.log == ["enable green", "shift green 100"]
    assert out.distribution == {"blue": 0, "green": 100}
    assert {t.target: t.status for t in out.targets} == {"g1": "deployed", "g2": "deployed", "b1": "unchanged",
                                                          "b2": "unchanged"}
    assert live_group(router, ROUTE) == "green"


def test_the_next_deployment_goes_to_the_other_group():
    ts, router, groups = world()
    run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    out = run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    assert out.group == "blue" and out.previous_group == "green"


def test_a_failed_deployment_never_moves_traffic():
    ts, router, groups = world(g2={"fail": True})
    out = run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    assert out.status == "rolled_back" and not out.switched
    assert router.log == [] and router.distribution() == {"blue": 100, "green": 0}
    assert ts["g1"].running == {"web": OLD}


def test_a_group_the_router_never_sees_healthy_is_restored_and_traffic_stays():
    ts, router, groups = world(down={"g2"})
    naps = []
    out = run_blue_green(groups, router, ROUTE, ready_timeout_s=0.05, poll_s=0.01, sleep=naps.append)
    assert out.status == "rolled_back" and "g2 not seen healthy" in out.error
    assert "shift green 100" not in router.log and router.distribution()["blue"] == 100
    assert ts["g1"].running == ts["g2"].running == {"web": OLD}
    assert {t.target: t.status for t in out.targets}["g1"] == "rolled_back"
    assert naps  # it waited for the router's checks before giving up


def test_a_refused_switch_sends_traffic_back_and_restores_the_new_group():
    ts, router, groups = world()
    router.refuse_shift_to = "green"
    out = run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    assert out.status == "rolled_back" and "refused" in out.error
    assert router.distribution() == {"blue": 100, "green": 0}
    assert ts["g1"].running == {"web": OLD}


def test_switch_back_is_instant_while_the_old_set_runs():
    ts, router, groups = world()
    run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    assert switch_back(router, ROUTE, "blue") == {"blue": 100, "green": 0}
    assert ts["b1"].running == {"web": OLD}


def test_retire_removes_the_previous_set_only_if_it_is_still_idle_and_unchanged():
    ts, router, groups = world()
    run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    expected = {"b1": {"web": OLD}, "b2": {"web": OLD}}
    ts["b2"].running = {"web": "sha256:" + "9" * 64}   # someone deployed here since the switch
    res = retire_previous(groups["blue"], router, ROUTE, "blue", expected)
    assert res.removed == ["b1"] and "b2" in res.skipped
    assert ts["b1"].running == {} and ts["b2"].running != {}
    assert "disable blue" in router.log
    assert ts["g1"].running == {"web": NEW}


def test_retire_leaves_a_group_that_receives_traffic():
    ts, router, groups = world()
    run_blue_green(groups, router, ROUTE, sleep=lambda s: None)
    switch_back(router, ROUTE, "blue")
    res = retire_previous(groups["blue"], router, ROUTE, "blue", {"b1": {"web": OLD}, "b2": {"web": OLD}})
    assert res.removed == [] and "receives 100 %" in res.skipped["b1"]
    assert ts["b1"].running == {"web": OLD}
