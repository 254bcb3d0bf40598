"""`ecs` target: one ECS service. A deployment is a new task definition revision and the
service's own rolling update (no Airflow here; the client is a boto3 ECS client).

prepare  - if the diff changes anything: copy the service's current task definition, change only
           the images (`repo@sha256:...`) of the release's containers, add the sticker as docker
           labels and tag the revision with the deployment id and the revision it replaces;
           update the service to it with the deployment configuration from the settings
           (rolling min/max percent, circuit breaker), then wait for ECS to finish the rollout.
           ECS switches traffic itself while rolling, so the switch happens here.
commit   - nothing to do: the previous revision stays registered for a switch back.
discard  - update the service back to the previous revision, wait, deregister the failed one.
restore  - from the service's own state: if it runs a revision tagged with this deployment, go
           back to the revision named in its `stella.previous-task-definition` tag (idempotent).
finalize - nothing: ECS drained the old tasks; old revisions stay for the rollback DAG.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stella_operators.targets.api_target import PollingTarget
from stella_operators.targets.contract import (
    DeployError,
    PreparedChange,
    TargetFacts,
    TargetPlan,
    sticker_labels,
)
from stella_operators.targets.diff import diff
from stella_operators.targets.ecs import EcsSettings
from stella_operators.targets.ecs.facts import (
    TAG_DEPLOYMENT,
    TAG_PREVIOUS,
    next_revision,
    parse_facts,
    rollout_state,
    tags_dict,
    the_service,
)

log = logging.getLogger(__name__)


def _error_text(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code')}: {err.get('Message')}"
    return f"{type(exc).__name__}: {exc}"


class EcsTarget(PollingTarget[EcsSettings]):
    """An ECS service. `client` is a boto3 ECS client (EcsHook(...).conn in Airflow); cancel() stops a
    rollout wait at its next poll."""

    kind = "ecs"
    keeps_runtime = ("an ecs target keeps the command, env and health check of the service's task definition; "
                     "remove them from the estate component or change the task definition")
    wrap_errors = (Exception,)  # botocore errors carry the API's own words

    def describe(self) -> str:
        return f"{self.settings.cluster}/{self.settings.service}"

    def error_text(self, exc: Exception) -> str:
        return _error_text(exc)

    def container_of(self, component: str) -> str:
        return self.settings.containers.get(component, component)

    # facts ---------------------------------------------------------------------------------
    def service(self) -> dict[str, Any]:
        described = self.client.describe_services(cluster=self.settings.cluster, services=[self.settings.service])
        return the_service(described, self.settings.service)

    def task_definition(self, arn: str) -> dict[str, Any]:
        return dict(self.client.describe_task_definition(taskDefinition=arn, include=["TAGS"]))

    def facts(self, app: str) -> TargetFacts:
        try:
            svc = self.service()
            return parse_facts(self.name, app, svc, self.task_definition(svc["taskDefinition"]),
                               self.settings.containers)
        except ValueError as exc:
            raise DeployError(self.name, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - botocore errors carry the API's own words
            raise DeployError(self.name, f"cannot read the service: {_error_text(exc)}") from None

    # prepare / wait ------------------------------------------------------------------------
    def deployment_configuration(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "minimumHealthyPercent": s.minimum_healthy_percent, "maximumPercent": s.maximum_percent,
            "deploymentCircuitBreaker": {"enable": s.circuit_breaker, "rollback": s.circuit_breaker_rollback},
            "strategy": s.strategy}
        if s.bake_time_minutes is not None:
            config["bakeTimeInMinutes"] = s.bake_time_minutes
        canary = {k: v for k, v in (("canaryPercent", s.canary_percent),
                                    ("canaryBakeTimeInMinutes", s.canary_bake_time_minutes)) if v is not None}
        linear = {k: v for k, v in (("stepPercent", s.linear_step_percent),
                                    ("stepBakeTimeInMinutes", s.linear_step_bake_time_minutes)) if v is not None}
        if canary:
            config["canaryConfiguration"] = canary
        if linear:
            config["linearConfiguration"] = linear
        return config

    def _prepare(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        t0 = time.monotonic()
        changes = diff(self.facts(plan.app), plan)
        prepared.unchanged = [c.component for c in changes.changes if c.action == "keep"]
        if not changes.changed:
            prepared.log.append("service already runs the release, left alone")
            return
        current = self.service()["taskDefinition"]
        images = {self.container_of(s.component.name): s.component.ref for s in plan.components}
        request = next_revision(self.task_definition(current), images, sticker_labels(plan.sticker),
                                {TAG_DEPLOYMENT: plan.deployment_id, TAG_PREVIOUS: current})
        new = self.client.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
        for c in changes.changes:
            if c.action != "keep":
                prepared.started[c.component] = new
                prepared.to_retire[c.component] = [current]
        prepared.log.append(f"registered {new} (from {current}, images changed only)")
        restart = any(c.action == "restart" for c in changes.changes)
        self.client.update_service(cluster=self.settings.cluster, service=self.settings.service,
                                   taskDefinition=new, deploymentConfiguration=self.deployment_configuration(),
                                   forceNewDeployment=restart)
        prepared.log.append(f"service updated to {new}")
        self.wait_rollout(new, time.monotonic() + self.settings.rollout_timeout_s)
        prepared.timings_ms["rollout"] = int((time.monotonic() - t0) * 1000)
        prepared.log.append(f"rollout of {new} completed")

    def wait_rollout(self, task_definition: str, deadline: float) -> None:
        """Poll describe_services until the rollout of `task_definition` completed; DeployError
        when ECS failed or rolled it back, or at the deadline."""
        while True:
            state = rollout_state(self.service(), task_definition)
            if state.state == "completed":
                return
            if state.state in ("failed", "rolled_back"):
                raise DeployError(self.name, f"rollout of {task_definition} {state.state.replace('_', ' ')}: "
                                  f"{state.reason}")
            self.stop_if_cancelled()
            if time.monotonic() >= deadline:
                raise DeployError(self.name, f"rollout of {task_definition} not completed after "
                                  f"{self.settings.rollout_timeout_s:g}s: {state.reason}")
            time.sleep(self.settings.poll_interval_s)

    # commit / discard / restore / finalize ---------------------------------------------------
    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if prepared.started:
            prepared.log.append("ECS switched while rolling; the previous revision stays registered")

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        new = next(iter(prepared.started.values()), None)
        previous = next((ids[0] for ids in prepared.to_retire.values() if ids), None)
        if new is None or previous is None:
            return
        self._switch_back(new, previous)
        prepared.log.append(f"service back on {previous}; {new} deregistered")

    def _switch_back(self, new: str, previous: str) -> None:
        try:
            if self.service()["taskDefinition"] != previous:
                self.client.update_service(cluster=self.settings.cluster, service=self.settings.service,
                                           taskDefinition=previous,
                                           deploymentConfiguration=self.deployment_configuration())
            self.wait_rollout(previous, time.monotonic() + self.settings.rollout_timeout_s)
            self.client.deregister_task_definition(taskDefinition=new)
        except DeployError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DeployError(self.name, f"cannot switch back to {previous}: {_error_text(exc)}") from None
        log.info("%s: back on %s", self.name, previous)

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        try:
            current = self.service()["taskDefinition"]
            tags = tags_dict(self.task_definition(current))
        except Exception as exc:  # noqa: BLE001
            raise DeployError(self.name, f"cannot read the service to restore it: {_error_text(exc)}") from None
        if tags.get(TAG_DEPLOYMENT) != plan.deployment_id:
            return  # the deployment never reached the service, or was already undone
        before = tags.get(TAG_PREVIOUS)
        if not before:
            raise DeployError(self.name, f"{current} carries no {TAG_PREVIOUS} tag: "
                              "cannot tell which revision to restore")
        self._switch_back(current, before)

    def finalize(self, plan: TargetPlan) -> None:
        return None
