"""`strategy: canary` in the estate: every field has an effect (promotion/canary.py) or is refused,
with the field path and the fix."""

import pytest

from tests.unit.estate.one_environment import OneEnvironment

ONE = OneEnvironment({"p1": "stable", "p2": "canary"})
estate, refused = ONE.estate, ONE.refused
ROUTER = "router: {type: haproxy, settings: {socket: /run/haproxy.sock, backend: web}}"


def test_steps_groups_and_defaults():
    env = estate(f"""
strategy: canary
canary:
  {ROUTER}
  steps: [10, 50]
  bake_s: 5
  analysis:
    metrics:
      - {{name: errors, query: 'sum(x)', failure_condition: 'result > 0.05', interval_s: 2, count: 3}}
""").environment("prod")
    cs = env.canary
    assert cs.plan() == (10, 50, 100) and cs.group_names() == ("stable", "canary")
    assert cs.on_inconclusive == "ask" and cs.metrics_conn_id == "stella_prometheus"
    assert cs.analysis["metrics"][0]["interval_s"] == 2


def test_a_progression_instead_of_steps():
    env = estate(f"""
strategy: canary
canary:
  {ROUTER}
  progression: {{kind: exponential, start: 10, factor: 2}}
""").environment("prod")
    assert env.canary.plan() == (10, 20, 40, 80, 100)


@pytest.mark.parametrize(("block", "words"), [
    ("steps: [10, 5]", "steps.1: 5 does not increase"),
    ("steps: [0, 50]", "steps.0: 0 is not a traffic share"),
    ("steps: [10]\n  progression: {kind: linear, start: 10, step: 10}", "exactly one of `steps`"),
    ("bake_s: 5", "exactly one of `steps`"),
    ("progression: {kind: linear, start: 10}", "a linear progression needs `step`"),
    ("progression: {kind: fibonacci, start: 10, factor: 2}", "`factor` is not read by a fibonacci"),
    ("steps: [10]\n  on_inconclusive: pause", "on_inconclusive"),
    ("steps: [10]\n  analysis: {metrics: [{name: e, query: q}]}", "needs a success_condition"),
    ("steps: [10]\n  analysis: {metrics: [{name: e, query: q, failure_condition: 'result >'}]}",
     "analysis: metrics.0.failure_condition"),
    ("steps: [10]\n  bake: 5", "bake"),
    ("steps: [10]\n  analysis: {metrics: [{name: e, query: 'e{t=\"${host}\"}', success_condition: 'result < 1'}]}",
     "analysis: metrics.0.query: unknown variable(s) ${host}"),
])
def test_nonsense_is_refused_naming_the_field(block, words):
    text = refused(f"strategy: canary\ncanary:\n  {ROUTER}\n  {block}")
    assert "environments[0].canary" in text and words in text, text


def test_canary_needs_its_block_and_its_groups():
    assert "`strategy: canary` needs a `canary:` block" in refused("strategy: canary")
    text = refused(f"strategy: canary\ncanary:\n  {ROUTER}\n  steps: [10]\n  groups: [stable, blue]")
    assert "canary group blue has no targets" in text


def test_the_router_settings_are_checked_at_load():
    text = refused("strategy: canary\ncanary:\n  router: {type: haproxy, settings: {backend: web}}\n  steps: [10]")
    assert "environments[0].canary.router.settings.socket" in text, text


def test_router_none_takes_no_groups():
    # The `none` router type is looked up through the entry points: the venv may predate it, so
    # only the groups rule is checked here (it is the model's own).
    text = refused("strategy: canary\ncanary:\n  router: {type: none}\n  steps: [10]\n  groups: [stable, canary]")
    assert "router none moves traffic by updating targets" in text
