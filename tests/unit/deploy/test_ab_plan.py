"""The stage plan of A/B deployments: shares -> targets per stage, rounding towards capacity."""

from __future__ import annotations

import pytest

from stella_operators.deploy.ab_plan import check_ab_groups, choose_groups, plan_ab, stage_counts


def test_b_rounds_up_and_a_rounds_down_so_capacity_never_dips():
    assert stage_counts(4, 4, 25) == (1, 1)
    assert stage_counts(3, 3, 50) == (2, 1)        # 1.5: B starts 2, A stops 1
    assert stage_counts(2, 2, 25) == (1, 0)
    assert stage_counts(2, 4, 100) == (4, 2)
    for n_a, n_b in ((1, 1), (2, 3), (3, 2), (5, 7), (10, 10)):
        for share in range(1, 101):
            up, down = stage_counts(n_a, n_b, share)
            # the share of the fleet at work with every B healthy: never under 100 %
            assert (n_a - down) / n_a + up / n_b >= 1 - 1e-9, (n_a, n_b, share)


def test_each_stage_names_the_targets_it_starts_and_stops_in_estate_order():
    plan = plan_ab(["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"], [25, 50, 100], [100, 90, 80],
                   group_a="a", group_b="b", wait_s=5)
    assert [(s.share, s.up, s.down) for s in plan.stages] == [
        (25, ("b1",), ("a1",)), (50, ("b2",), ("a2",)), (100, ("b3", "b4"), ("a3", "a4"))]
    assert plan.stages[1].running_b == ("b1", "b2") and plan.stages[1].stopped_a == ("a1", "a2")
    assert [s.threshold for s in plan.stages] == [100, 90, 80]
    assert plan.stages[2].promised_capacity == pytest.approx(80)
    assert plan.stages[0].promised_capacity == pytest.approx(100)
    assert plan.stages[1].promised_capacity == pytest.approx(95)


def test_the_first_deployment_has_no_group_a_and_only_starts_b():
    plan = plan_ab([], ["a1", "a2"], [50, 100], [100, 100], group_a=None, group_b="a")
    assert [(s.up, s.down) for s in plan.stages] == [(("a1",), ()), (("a2",), ())]


def test_group_a_is_the_one_running_the_app():
    assert choose_groups(["x", "y"], {"x": [], "y": []}) == (None, "x")
    assert choose_groups(["x", "y"], {"x": ["x1"], "y": []}) == ("x", "y")
    assert choose_groups(["x", "y"], {"y": ["y2"]}) == ("y", "x")
    with pytest.raises(ValueError, match=r"both groups run the app \(x: x1; y: y1\)"):
        choose_groups(["x", "y"], {"x": ["x1"], "y": ["y1"]})


def members(n_a: int, n_b: int) -> list[tuple[str, str | None]]:
    return [(f"a{i}", "a") for i in range(n_a)] + [(f"b{i}", "b") for i in range(n_b)]


def test_estate_checks_name_the_problem():
    check_ab_groups(("a", "b"), [25, 50, 100], members(2, 2))   # stage 50 only stops an A target: fine
    with pytest.raises(ValueError, match="names the group a twice"):
        check_ab_groups(("a", "a"), [100], members(2, 2))
    with pytest.raises(ValueError, match="group b has no targets"):
        check_ab_groups(("a", "b"), [100], members(2, 0))
    with pytest.raises(ValueError, match="targets x1 are in neither ab group"):
        check_ab_groups(("a", "b"), [100], [*members(1, 1), ("x1", None)])
    with pytest.raises(ValueError, match="ab.stages: stage 20 moves no target from a .2 targets. to b"):
        check_ab_groups(("a", "b"), [10, 20, 100], members(2, 2))
