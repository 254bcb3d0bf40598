"""What the grid shows for each strategy: one task per batch for rolling, a roll-back safety net,
a retire step for blue-green; all_at_once keeps its single `deploy` task."""

from __future__ import annotations

import textwrap

from stella_operators.dag_builder import promote_dag_id
from tests.unit.dag_builder.estates import SHOP_DEV


def targets(prefix: str) -> str:
    return "\n".join(f"      - {{name: {prefix}{i}, type: docker, connection: c_{prefix}{i}, "
                     f"group: {'blue' if i < 3 else 'green'}}}" for i in range(1, 6))


ESTATE = textwrap.dedent(SHOP_DEV + """\
      - name: prod
        strategy: rolling
        rolling: {batch_size: 2, max_unavailable: 1, pause_s: 30}
        deploy_timeout_s: 100
        targets:
    TARGETS_R
      - name: live
        requires: [dev]
        strategy: blue_green
        blue_green:
          router: {type: haproxy, settings: {socket: /run/haproxy.sock, backend: shop_web}}
        targets:
    TARGETS_L
""").replace("TARGETS_R", targets("r")).replace("TARGETS_L", targets("l"))


def test_all_at_once_keeps_one_deploy_task(dags):
    dag = dags[promote_dag_id("shop", "dev")]
    assert [t.task_id for t in dag.tasks] == ["request", "gates", "approval", "deploy", "verify"]


def test_rolling_has_one_task_per_batch_chained_in_order(dags):
    dag = dags[promote_dag_id("shop", "prod")]
    ids = [t.task_id for t in dag.tasks]
    assert ids == ["request", "gates", "approval", "deploy.batch_1", "deploy.batch_2", "deploy.batch_3",
                   "deploy.roll_back_if_left", "verify"]
    b1, b2, b3 = (dag.get_task(f"deploy.batch_{k}") for k in (1, 2, 3))
    assert [b1.batch, b2.batch, b3.batch] == [0, 1, 2]
    assert b1.upstream_task_ids == {"approval"} and b2.upstream_task_ids == {"deploy.batch_1"}
    assert b3.upstream_task_ids == {"deploy.batch_2"}
    assert dag.get_task("verify").upstream_task_ids == {"deploy.batch_3"}
    assert "r1, r2" in b1.doc_md and "r5" in b3.doc_md
    # two waves of one target per batch (max_unavailable 1): 2 x 100 s + the pause + a minute
    assert b1.execution_timeout.total_seconds() == 2 * 100 + 30 + 60


def test_the_roll_back_step_runs_only_when_a_batch_failed(dags):
    dag = dags[promote_dag_id("shop", "prod")]
    rb = dag.get_task("deploy.roll_back_if_left")
    assert rb.trigger_rule == "one_failed"
    assert rb.upstream_task_ids == {"deploy.batch_1", "deploy.batch_2", "deploy.batch_3"}
    assert rb.downstream_task_ids == set()


def test_blue_green_retires_the_previous_set_after_verification(dags):
    dag = dags[promote_dag_id("shop", "live")]
    assert [t.task_id for t in dag.tasks] == ["request", "gates", "approval", "deploy", "verify",
                                              "retire_previous_set"]
    assert dag.get_task("retire_previous_set").upstream_task_ids == {"verify"}
