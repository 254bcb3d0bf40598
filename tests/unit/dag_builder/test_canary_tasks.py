"""What the grid shows for a canary environment: a `canary` group with `deploy`, one task per step
(`step_1_10pct`, ...) chained, and the roll-back safety net; then verify and retire_previous_set."""

from __future__ import annotations

import textwrap

from airflow.task.trigger_rule import TriggerRule

from stella_operators.dag_builder import build_estate_dags, promote_dag_id
from stella_operators.operators.canary import CanaryStepOperator

ESTATE = textwrap.dedent("""
    registries: [{host: "reg.local:5000", scheme: http}]
    apps:
      - name: shop
        components: [{name: web, repository: reg.local:5000/demo/web}]
    environments:
      - name: live
        requires: []
        strategy: canary
        canary:
          router: {type: haproxy, settings: {socket: /run/haproxy.sock, backend: shop_web}}
          progression: {kind: exponential, start: 10, factor: 3}
          bake_s: 30
        targets:
          - {name: s1, type: docker, connection: c_s1, group: stable}
          - {name: c1, type: docker, connection: c_c1, group: canary}
""")


def test_a_canary_environment_gets_one_task_per_step(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    dag = build_estate_dags(path)[promote_dag_id("shop", "live")]
    ids = [t.task_id for t in dag.tasks]
    assert ids == ["request", "gates", "approval", "canary.deploy", "canary.step_1_10pct", "canary.step_2_30pct",
                   "canary.step_3_90pct", "canary.step_4_100pct", "canary.roll_back_if_left", "verify",
                   "retire_previous_set"]
    steps = [dag.get_task(f"canary.step_{k}") for k in ("1_10pct", "2_30pct", "3_90pct", "4_100pct")]
    assert all(isinstance(s, CanaryStepOperator) for s in steps) and [s.step for s in steps] == [0, 1, 2, 3]
    assert dag.get_task("canary.step_1_10pct").upstream_task_ids == {"canary.deploy"}
    assert dag.get_task("canary.step_2_30pct").upstream_task_ids == {"canary.step_1_10pct"}
    assert dag.get_task("verify").upstream_task_ids == {"canary.step_4_100pct"}
    safety = dag.get_task("canary.roll_back_if_left")
    assert safety.trigger_rule == TriggerRule.ONE_FAILED
    assert safety.upstream_task_ids == {"canary.deploy", *(s.task_id for s in steps)}
    assert dag.get_task("retire_previous_set").upstream_task_ids == {"verify"}
    assert all(s.retries == 0 for s in steps)
