"""The deploy tasks of an A/B environment (`strategy: ab`): one task per stage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup, chain
from airflow.task.trigger_rule import TriggerRule

from stella_operators.estate.models import Environment
from stella_operators.operators.ab import DeployStageOperator
from stella_operators.operators.promotion import RollBackIfLeftOperator


def ab_stage_tasks(env: Environment, promo: str, common: dict[str, Any]
                   ) -> tuple[DeployStageOperator, DeployStageOperator]:
    """A `deploy` task group: `stage_1` .. `stage_N` chained in order (each starts its share of B,
    watches B's health for the wait, stops its share of A), plus `roll_back_if_left` (trigger rule
    one_failed) for a deployment whose stage tasks died. Which targets a stage moves depends on
    which group runs the app at deploy time, so the task docs give shares, the logs give targets."""
    ab = env.ab
    assert ab is not None  # the estate model requires the block with the strategy
    n = len(ab.stages)
    thresholds = ab.thresholds()
    with TaskGroup("deploy", tooltip=f"ab: {n} stages {ab.stages}", prefix_group_id=True):
        tasks = []
        for k, share in enumerate(ab.stages):
            tasks.append(DeployStageOperator(
                task_id=f"stage_{k + 1}", promotion_id=promo, stage=k,
                # starting B's share, the wait, then stopping A's share (and a rollback if it fails)
                execution_timeout=timedelta(seconds=2 * env.deploy_timeout_s + ab.stage_wait_s + 60),
                doc_md=f"Stage {k + 1} of {n}: {share} % of the fleet on group B (the group not running "
                       f"the app), at least {thresholds[k]:g} % of B's started targets healthy for "
                       f"{ab.stage_wait_s:g} s, then the same share of group A stopped", **common))
        chain(*tasks)
        tasks >> RollBackIfLeftOperator(task_id="roll_back_if_left", promotion_id=promo,
                                        trigger_rule=TriggerRule.ONE_FAILED, **common)
    return tasks[0], tasks[-1]
