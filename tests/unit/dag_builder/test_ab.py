"""What the grid shows for `strategy: ab`: one task per stage, chained, with a roll-back safety net."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from stella_operators.dag_builder import build_estate_dags, promote_dag_id
from stella_operators.operators.ab import DeployStageOperator

ESTATE = textwrap.dedent("""
    registries: [{host: "reg.local:5000", scheme: http}]
    apps:
      - name: worker
        components: [{name: consume, repository: reg.local:5000/demo/worker}]
    environments:
      - name: work
        strategy: ab
        ab: {groups: [a, b], stages: [25, 50, 100], health_threshold: [100, 100, 75], stage_wait_s: 120}
        deploy_timeout_s: 100
        targets:
          - {name: a1, type: docker, connection: c1, group: a}
          - {name: a2, type: docker, connection: c2, group: a}
          - {name: b1, type: docker, connection: c3, group: b}
          - {name: b2, type: docker, connection: c4, group: b}
      - name: solo
        strategy: ab
        ab: {groups: [a, b], stages: [100]}
        targets:
          - {name: s1, type: docker, connection: c5, group: a}
          - {name: s2, type: docker, connection: c6, group: b}
""")


def test_one_task_per_stage_chained_with_a_rollback_safety_net(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    dags = build_estate_dags(path)
    dag = dags[promote_dag_id("worker", "work")]
    assert [t.task_id for t in dag.tasks] == ["request", "gates", "approval", "deploy.stage_1", "deploy.stage_2",
                                              "deploy.stage_3", "deploy.roll_back_if_left", "verify"]
    stages = [dag.get_task(f"deploy.stage_{k}") for k in (1, 2, 3)]
    assert all(isinstance(t, DeployStageOperator) for t in stages)
    assert [t.stage for t in stages] == [0, 1, 2]
    assert stages[0].upstream_task_ids == {"approval"}
    assert stages[1].upstream_task_ids == {"deploy.stage_1"} and stages[2].upstream_task_ids == {"deploy.stage_2"}
    assert dag.get_task("verify").upstream_task_ids == {"deploy.stage_3"}
    assert dag.get_task("deploy.roll_back_if_left").trigger_rule == "one_failed"
    # the stage's wait is spent in the task: its time-out includes it
    assert stages[0].execution_timeout == timedelta(seconds=2 * 100 + 120 + 60)
    assert "at least 75 % of B's started targets healthy for 120 s" in stages[2].doc_md
    solo = dags[promote_dag_id("worker", "solo")]
    assert [t.task_id for t in solo.tasks if t.task_id.startswith("deploy")] == ["deploy.stage_1",
                                                                                  "deploy.roll_back_if_left"]
