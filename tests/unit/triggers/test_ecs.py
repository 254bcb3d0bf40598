"""EcsServiceRolloutTrigger serializes to exactly what rebuilds it (the triggerer re-creates it)."""

import importlib

from stella_operators.triggers.ecs import EcsServiceRolloutTrigger


def test_rollout_trigger_round_trip():
    t = EcsServiceRolloutTrigger(cluster="prod", service="web", task_definition="arn:td:8",
                                 deadline="2026-01-01T00:00:00+00:00", aws_conn_id="aws_prod",
                                 region_name="eu-west-1", poll_interval=2.0, min_wait_s=0)
    path, kwargs = t.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs["task_definition"] == "arn:td:8" and kwargs["aws_conn_id"] == "aws_prod"
