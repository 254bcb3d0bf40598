"""Pure functions over ECS API outputs (describe_services, describe_task_definition): facts,
the rollout state of a deployment, and the next task definition revision. No I/O.

Shapes follow the ECS API reference (DescribeServices, DescribeTaskDefinition,
RegisterTaskDefinition); tests/unit/targets/ecs/fixtures/ holds recorded outputs, one folder per fact.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from stella_operators.release.refs import DIGEST_RE
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker

LABEL_STICKER = "stella.version.json"
TAG_DEPLOYMENT = "stella.deployment.id"
TAG_PREVIOUS = "stella.previous-task-definition"

# RegisterTaskDefinition takes these keys of a described task definition; the others
# (arn, revision, status, compatibilities, requiresAttributes, registeredAt/By...) are ECS's own.
REGISTER_KEYS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
    "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
    "enableFaultInjection",
)

Rollout = Literal["completed", "in_progress", "failed", "rolled_back"]


def image_digest(image: str) -> str | None:
    """`repo@sha256:...` -> the digest; a tag-only reference has no digest we can trust (None)."""
    _, at, digest = image.rpartition("@")
    return digest if at and DIGEST_RE.match(digest) else None


def the_service(described: dict[str, Any], service: str) -> dict[str, Any]:
    """The one service of a describe_services answer; ValueError names what ECS said instead."""
    services = described.get("services") or []
    if not services:
        reasons = ", ".join(f"{f.get('arn')}: {f.get('reason')}" for f in described.get("failures") or [])
        raise ValueError(f"ECS service {service!r} not found ({reasons or 'no services in the answer'})")
    svc = services[0]
    if svc.get("status") != "ACTIVE":
        raise ValueError(f"ECS service {service!r} is {svc.get('status')}, not ACTIVE")
    return dict(svc)


def primary_deployment(service: dict[str, Any]) -> dict[str, Any] | None:
    for dep in service.get("deployments") or []:
        if dep.get("status") == "PRIMARY":
            return dict(dep)
    return None


@dataclass(frozen=True)
class RolloutState:
    state: Rollout
    reason: str


def rollout_state(service: dict[str, Any], task_definition: str) -> RolloutState:
    """Where the service's rollout of `task_definition` stands.

    completed:   the deployment of that revision is COMPLETED and is the only one left
    failed:      its deployment FAILED (circuit breaker without rollback) or its tasks keep failing
    rolled_back: the service moved off that revision (the circuit breaker rolled back, or someone
                 else deployed): ECS itself said no
    in_progress: anything else
    """
    deployments = service.get("deployments") or []
    ours = [d for d in deployments if d.get("taskDefinition") == task_definition]
    wanted = service.get("taskDefinition")
    if wanted != task_definition:
        return RolloutState("rolled_back", f"the service now runs {wanted} instead of {task_definition}"
                            + _reason_of(ours))
    dep = next((d for d in ours if d.get("status") == "PRIMARY"), None)
    if dep is None:
        # The service wants our revision but no deployment record names it yet (ECS answers with it
        # in the same call; moto keeps the first record): judge the one PRIMARY deployment.
        dep = primary_deployment(service)
        if dep is None or len(deployments) != 1:
            return RolloutState("in_progress", "waiting for the deployment of the new revision")
    state = dep.get("rolloutState")
    reason = dep.get("rolloutStateReason") or ""
    if state == "FAILED":
        return RolloutState("failed", reason or "the deployment failed")
    if state == "COMPLETED" and len(deployments) == 1 and dep.get("runningCount", 0) >= dep.get("desiredCount", 0):
        return RolloutState("completed", reason or "completed")
    running, desired = dep.get("runningCount", 0), dep.get("desiredCount", 0)
    return RolloutState("in_progress", f"{running}/{desired} tasks running, {len(deployments)} deployment(s)"
                        + (f"; {reason}" if reason else ""))


def _reason_of(deployments: list[dict[str, Any]]) -> str:
    reasons = [d.get("rolloutStateReason") for d in deployments if d.get("rolloutStateReason")]
    return f" ({reasons[0]})" if reasons else ""


def tags_dict(described: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in described.get("tags") or []}


def parse_facts(target: str, app: str, service: dict[str, Any], task_definition: dict[str, Any],
                containers: dict[str, str]) -> TargetFacts:
    """Facts of an ECS service: each container of its current task definition is a component
    (named through `containers`, component -> container), digest from the image reference.
    Health: True once the revision's rollout completed, False when it failed, else unknown."""
    td = task_definition.get("taskDefinition") or task_definition
    arn = td.get("taskDefinitionArn", "")
    state = rollout_state(service, arn).state
    healthy = {"completed": True, "failed": False, "rolled_back": False}.get(state)
    by_container = {c: comp for comp, c in containers.items()}
    components: dict[str, RunningComponent] = {}
    sticker: VersionSticker | None = None
    for cd in td.get("containerDefinitions") or []:
        name = by_container.get(cd["name"], cd["name"])
        labels = dict(cd.get("dockerLabels") or {})
        components[name] = RunningComponent(component=name, digest=image_digest(cd.get("image", "")),
                                            workload_id=arn, workload_name=f"{td.get('family')}:{td.get('revision')}"
                                            f"/{cd['name']}", healthy=healthy, labels=labels)
        raw = labels.get(LABEL_STICKER)
        if raw and sticker is None:
            try:
                sticker = VersionSticker.model_validate_json(raw)
            except ValueError:
                sticker = None
    return TargetFacts(target=target, app=app, components=components, sticker=sticker)


def next_revision(described: dict[str, Any], images: dict[str, str], labels: dict[str, str],
                  tags: dict[str, str]) -> dict[str, Any]:
    """RegisterTaskDefinition kwargs: the described revision with only the images of the named
    containers changed (container -> `repo@sha256:...`), `labels` added to every container's
    dockerLabels (the sticker) and `tags` merged into its tags. Everything else is kept as is."""
    td = described["taskDefinition"]
    request = {k: copy.deepcopy(td[k]) for k in REGISTER_KEYS if k in td}
    names = {cd["name"] for cd in request["containerDefinitions"]}
    missing = sorted(set(images) - names)
    if missing:
        raise ValueError(f"task definition {td.get('taskDefinitionArn')} has no container named "
                         f"{', '.join(missing)} (containers: {', '.join(sorted(names))}); map components "
                         f"to containers with settings.containers")
    for cd in request["containerDefinitions"]:
        if cd["name"] in images:
            cd["image"] = images[cd["name"]]
        cd["dockerLabels"] = {**(cd.get("dockerLabels") or {}), **labels}
    merged = {**tags_dict(described), **tags}
    if merged:
        request["tags"] = [{"key": k, "value": v} for k, v in merged.items()]
    return request
