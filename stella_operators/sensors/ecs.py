"""EcsServiceRolloutSensor: wait until an ECS service finished rolling out a task definition revision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from stella_operators.triggers.ecs import EcsServiceRolloutTrigger

NOT_DONE = ("failed", "rolled_back", "timeout", "error")


class EcsServiceRolloutSensor(BaseSensorOperator):
    """Clears when the service's rollout of `task_definition` completed; fails (no retry) when ECS
    failed it, the circuit breaker rolled it back, or `timeout` passed.

    Deferrable by default (waiting holds no worker slot: EcsServiceRolloutTrigger polls in the
    triggerer); with ``deferrable=False`` it pokes describe_services from the worker.

    :param cluster: templated.
    :param service: templated.
    :param task_definition: templated; the revision ARN (e.g. from the deploy task's XCom).
    :param aws_conn_id: the aws Connection, as the Amazon provider's ECS operators use it.
    :param region_name: default: the Connection's region.
    :param poll_interval: seconds between describe_services calls.
    """

    template_fields = ("cluster", "service", "task_definition")
    ui_color = "#ffe9c7"

    def __init__(self, *, cluster: str, service: str, task_definition: str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, poll_interval: float = 5.0, deferrable: bool = True,
                 trigger_min_wait_s: float = 8.0, **kwargs: Any):
        kwargs.setdefault("poke_interval", poll_interval)
        kwargs.setdefault("timeout", 1800)
        super().__init__(**kwargs)
        self.cluster = cluster
        self.service = service
        self.task_definition = task_definition
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.trigger_min_wait_s = trigger_min_wait_s

    def _trigger(self, deadline: datetime) -> EcsServiceRolloutTrigger:
        return EcsServiceRolloutTrigger(cluster=self.cluster, service=self.service,
                                        task_definition=self.task_definition, deadline=deadline.isoformat(),
                                        aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                        poll_interval=self.poll_interval, min_wait_s=self.trigger_min_wait_s)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        deadline = datetime.now(UTC) + timedelta(seconds=float(self.timeout))
        self.defer(trigger=self._trigger(deadline), method_name="execute_complete",
                   timeout=timedelta(seconds=float(self.timeout) + 60))
        return None

    def poke(self, context: Any) -> bool:
        event = self._trigger(datetime.now(UTC) + timedelta(days=1))._check()
        if event is None:
            return False
        self.execute_complete(context, event)
        return True

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        status = event.get("status")
        if status == "completed":
            self.log.info("%s/%s: rollout of %s completed", self.cluster, self.service, self.task_definition)
            return str(event["task_definition"])
        if status in NOT_DONE:
            raise AirflowFailException(f"ECS service {self.cluster}/{self.service}: rollout of "
                                       f"{event.get('task_definition')} {str(status).replace('_', ' ')}: "
                                       f"{event.get('reason')}")
        raise AirflowFailException(f"unexpected trigger event {event!r}")
