"""EcsServiceRolloutTrigger: wait, in the triggerer, until an ECS service's rollout of one task
definition revision completes, fails, is rolled back, or the deadline passes.

It polls describe_services through the Amazon provider's EcsHook (the aws Connection), in a
thread, and judges the answer with the same pure `rollout_state` the ecs target uses. Only
reads (a trigger may run twice); one terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from stella_operators.targets.ecs.facts import rollout_state, the_service


class EcsServiceRolloutTrigger(BaseTrigger):
    """One event: {"status": completed | failed | rolled_back | timeout | error, "reason", "task_definition"}.

    :param cluster: cluster name or ARN.
    :param service: service name or ARN.
    :param task_definition: the revision ARN whose rollout is awaited.
    :param deadline: ISO-8601 instant; then the event is `timeout`.
    :param aws_conn_id: the aws Connection (endpoint_url in its extra reaches an emulator).
    :param region_name: default: the Connection's region.
    :param poll_interval: seconds between describe_services calls.
    :param min_wait_s: fire no earlier than this after start (Airflow 3.3 stale-event race, see
        triggers/ledger_poll.py MIN_WAIT_S).
    """

    def __init__(self, *, cluster: str, service: str, task_definition: str, deadline: str,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 poll_interval: float = 5.0, min_wait_s: float = 8.0):
        super().__init__()
        self.cluster = cluster
        self.service = service
        self.task_definition = task_definition
        self.deadline = deadline
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.min_wait_s = min_wait_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"cluster": self.cluster, "service": self.service, "task_definition": self.task_definition,
                 "deadline": self.deadline, "aws_conn_id": self.aws_conn_id, "region_name": self.region_name,
                 "poll_interval": self.poll_interval, "min_wait_s": self.min_wait_s})

    def _check(self) -> dict[str, Any] | None:
        from airflow.providers.amazon.aws.hooks.ecs import EcsHook  # the provider is the [ecs] extra

        client = EcsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn
        svc = the_service(client.describe_services(cluster=self.cluster, services=[self.service]), self.service)
        state = rollout_state(svc, self.task_definition)
        if state.state != "in_progress":
            return {"status": state.state, "reason": state.reason, "task_definition": self.task_definition}
        if datetime.now(UTC) >= datetime.fromisoformat(self.deadline):
            return {"status": "timeout", "reason": f"not completed by {self.deadline}: {state.reason}",
                    "task_definition": self.task_definition}
        return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.min_wait_s)
        while True:
            try:
                event = await asyncio.to_thread(self._check)
            except Exception as exc:  # fail closed, with the reason
                event = {"status": "error", "reason": f"{type(exc).__name__}: {exc}",
                         "task_definition": self.task_definition}
            if event is not None:
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll_interval)
