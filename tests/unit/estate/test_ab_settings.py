"""`strategy: ab` in the estate: every field of the `ab:` block has an effect (deploy/ab.py) or is
refused with the field path and the fix."""

import pytest

from stella_operators.promotion.ab import plan_for
from tests.unit.estate.one_environment import OneEnvironment

ONE = OneEnvironment({"a1": "a", "a2": "a", "b1": "b", "b2": "b"}, app="worker", component="consume",
                     repository="reg.local:5000/demo/worker")
estate, refused = ONE.estate, ONE.refused


def test_a_complete_block_becomes_the_stage_plan():
    env = estate("strategy: ab\nab: {groups: [a, b], stages: [50, 100], health_threshold: [100, 50], "
                 "stage_wait_s: 7}").environment("prod")
    plan = plan_for(env, "a", "b")
    assert [(s.up, s.down, s.threshold) for s in plan.stages] == [(("b1",), ("a1",), 100), (("b2",), ("a2",), 50)]
    assert plan.wait_s == 7


def test_defaults_are_25_50_100_all_healthy_and_a_30_s_wait():
    ab = estate("strategy: ab\nab: {groups: [a, b]}").environment("prod").ab
    assert ab.stages == [25, 50, 100] and ab.thresholds() == [100, 100, 100] and ab.stage_wait_s == 30


@pytest.mark.parametrize(("extra", "message"), [
    ("strategy: ab", "`strategy: ab` needs a `ab:` block"),
    ("strategy: rolling\nrolling: {batch_size: 1}\nab: {groups: [a, b]}",
     "`ab:` settings are only read with `strategy: ab`"),
    ("strategy: ab\nab: {groups: [a, b], stages: [50, 40, 100]}",
     "environments[0].ab.stages: stages must be strictly increasing: 40 follows 50"),
    ("strategy: ab\nab: {groups: [a, b], stages: [25, 50]}",
     "ab.stages: the last stage must be 100 (the whole fleet on the release), not 50"),
    ("strategy: ab\nab: {groups: [a, b], stages: [0, 100]}", "ab.stages[0]: Input should be greater than 0"),
    ("strategy: ab\nab: {groups: [a, b], stages: [50, 100], health_threshold: [100]}",
     "ab.health_threshold: give one threshold per stage (2 stages: [50, 100]), not 1"),
    ("strategy: ab\nab: {groups: [a, b], health_threshold: 0}",
     "ab.health_threshold: a threshold is a percent of B's started targets, more than 0 and at most 100, not 0"),
    ("strategy: ab\nab: {groups: [a, b], health_threshold: high}",
     "ab.health_threshold: give a percent (e.g. 90) or a list of one percent per stage, not 'high'"),
    ("strategy: ab\nab: {groups: [a, b], stage_wait_s: -1}", "ab.stage_wait_s"),
    ("strategy: ab\nab: {groups: [a, b], on_failure: pause}",
     "ab.on_failure: unknown key 'on_failure' (allowed: groups, health_threshold, stage_wait_s, stages)"),
    ("strategy: ab\non_failure: pause\nab: {groups: [a, b]}", "on_failure: pause needs strategy: rolling"),
    ("strategy: ab\nab: {groups: [a, c]}", "ab.groups: group c has no targets"),
    ("strategy: ab\nab: {groups: [a, a]}", "ab.groups names the group a twice"),
    ("strategy: ab\nab: {groups: [a, b], stages: [10, 20, 100]}",
     "ab.stages: stage 20 moves no target from a (2 targets) to b (2 targets)"),
])
def test_bad_settings_are_refused_with_the_field_and_the_fix(extra, message):
    assert message in refused(extra)
