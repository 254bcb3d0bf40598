"""Strategy settings in the estate: every accepted field has an effect (deploy/rollout.py,
deploy/blue_green.py) or is refused here, with the field path and the fix."""

import pytest

from stella_operators.deploy.rollout import rolling_policy
from stella_operators.estate import EstateError, parse_estate
from tests.unit.estate.one_environment import OneEnvironment

ONE = OneEnvironment({"p1": "blue", "p2": "blue", "p3": "green", "p4": "green", "p5": "green"})
estate, refused = ONE.estate, ONE.refused


def test_all_at_once_is_one_batch_that_rolls_back():
    pol = rolling_policy(estate("strategy: all_at_once").environment("prod"))
    assert pol.batches == (("p1", "p2", "p3", "p4", "p5"),) and pol.on_failure == "rollback"


def test_rolling_by_count_and_by_percent():
    env = estate("strategy: rolling\nrolling: {batch_size: 2, pause_s: 30}\non_failure: pause").environment("prod")
    pol = rolling_policy(env)
    assert pol.batches == (("p1", "p2"), ("p3", "p4"), ("p5",))
    assert pol.max_unavailable == 2 and pol.pause_s == 30 and pol.on_failure == "pause"
    pol = rolling_policy(estate("strategy: rolling\nrolling: {batch_percent: 40, max_unavailable: 1}")
                         .environment("prod"))
    assert pol.batches == (("p1", "p2"), ("p3", "p4"), ("p5",)) and pol.max_unavailable == 1


def test_rolling_needs_exactly_one_batch_size():
    assert "give exactly one of batch_size" in refused("strategy: rolling\nrolling: {pause_s: 1}")
    assert "give exactly one of batch_size" in refused("strategy: rolling\nrolling: {batch_size: 1, batch_percent: 5}")
    assert "needs a `rolling:` block" in refused("strategy: rolling")


def test_settings_of_another_strategy_are_refused():
    text = refused("rolling: {batch_size: 1}")
    assert "environments[0]" in text and "only read with `strategy: rolling`" in text


def test_pause_and_continue_need_rolling():
    assert "on_failure: continue needs strategy: rolling" in refused("on_failure: continue")
    assert "on_failure: pause needs strategy: rolling" in refused("on_failure: pause")


def test_blue_green_groups_and_router():
    router = "router: {type: haproxy, settings: {socket: /run/h.sock, backend: shop_web}}"
    env = estate(f"strategy: blue_green\nblue_green:\n  {router}\n  switch_back_s: 60").environment("prod")
    assert env.blue_green.groups == ("blue", "green") and env.blue_green.switch_back_s == 60
    assert "group purple has no targets" in refused(
        f"strategy: blue_green\nblue_green:\n  groups: [blue, purple]\n  {router}")
    assert "needs a `blue_green:` block" in refused("strategy: blue_green")


def test_blue_green_router_settings_are_checked_at_load():
    text = refused("strategy: blue_green\nblue_green:\n  router: {type: haproxy, settings: {socket: /s, backnd: x}}")
    assert "environments[0].blue_green.router.settings.backend: Field required" in text
    text = refused("strategy: blue_green\nblue_green:\n  router: {type: f5, settings: {}}")
    assert "environments[0].blue_green.router.type: no installed router type 'f5'" in text


def test_targets_outside_both_groups_are_refused():
    text = ONE.base.replace("connection: c5, group: green", "connection: c5")
    router = "router: {type: haproxy, settings: {socket: /run/h.sock, backend: shop_web}}"
    with pytest.raises(EstateError) as info:
        parse_estate(text + f"    strategy: blue_green\n    blue_green:\n      {router}\n", source="estate.yaml")
    assert "targets p5 are in neither blue_green group" in str(info.value)
