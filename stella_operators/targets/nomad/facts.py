"""Pure functions over Nomad API outputs (GET /v1/job/:id, /allocations, /deployment): facts,
the state of a deployment, and the next job spec. No I/O.

Shapes follow Nomad's HTTP API documentation; tests/unit/targets/nomad/fixtures/ holds recorded
answers, one folder per fact.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from stella_operators.release.refs import DIGEST_RE
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker

META_STICKER = "stella.version.json"
META_DEPLOYMENT = "stella.deployment.id"
META_PREVIOUS = "stella.previous-version"
# Server-side fields of a job read back from the API: not part of a spec to submit.
SERVER_FIELDS = ("Version", "Stable", "JobModifyIndex", "ModifyIndex", "CreateIndex", "Status", "SubmitTime",
                 "StatusDescription")
_NS = 1_000_000_000

DeploymentPhase = Literal["waiting", "in_progress", "canaries_healthy", "successful", "failed"]


def image_digest(image: str) -> str | None:
    """`repo@sha256:...` -> the digest; a tag is not a digest we can trust (None)."""
    _, at, digest = image.rpartition("@")
    return digest if at and DIGEST_RE.match(digest) else None


def docker_tasks(job: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """task name -> (its group name, the task) for every docker-driver task of the job."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            if task.get("Driver") == "docker":
                found[task["Name"]] = (group["Name"], task)
    return found


def group_health(job: dict[str, Any], allocations: list[dict[str, Any]], group: str) -> bool | None:
    """False: an allocation of the job's version failed or is unhealthy; True: as many run as the
    group's count; None: still placing (a deployment in progress)."""
    count = next((int(g.get("Count", 1)) for g in job.get("TaskGroups") or [] if g["Name"] == group), 1)
    mine = [a for a in allocations if a.get("JobVersion") == job.get("Version") and a.get("TaskGroup") == group
            and a.get("DesiredStatus") == "run"]
    if any(a.get("ClientStatus") == "failed" or (a.get("DeploymentStatus") or {}).get("Healthy") is False
           for a in mine):
        return False
    running = [a for a in mine if a.get("ClientStatus") == "running"]
    return True if len(running) >= count else None


def parse_facts(target: str, app: str, job: dict[str, Any], allocations: list[dict[str, Any]],
                tasks: dict[str, str]) -> TargetFacts:
    """Each docker task of the job's current version is a component (named through `tasks`,
    component -> task); digest from its image reference; health from its group's allocations."""
    by_task = {t: comp for comp, t in tasks.items()}
    meta = job.get("Meta") or {}
    components: dict[str, RunningComponent] = {}
    for name, (group, task) in docker_tasks(job).items():
        comp = by_task.get(name, name)
        components[comp] = RunningComponent(
            component=comp, digest=image_digest(str((task.get("Config") or {}).get("image", ""))),
            workload_id=f"{job['ID']}@v{job.get('Version')}", workload_name=f"{job['ID']}/{group}/{name}",
            healthy=group_health(job, allocations, group), labels=dict(meta))
    sticker = None
    if meta.get(META_STICKER):
        try:
            sticker = VersionSticker.model_validate_json(meta[META_STICKER])
        except ValueError:
            sticker = None
    return TargetFacts(target=target, app=app, components=components, sticker=sticker)


@dataclass(frozen=True)
class DeploymentState:
    phase: DeploymentPhase
    reason: str
    deployment_id: str | None = None


def deployment_state(deployments: list[dict[str, Any]], version: int) -> DeploymentState:
    """Where the deployment of job version `version` stands, from GET /v1/job/:id/deployments
    (the latest deployment alone would hide ours once auto_revert started the next one)."""
    mine = [d for d in deployments or [] if d.get("JobVersion") == version]
    if not mine:
        return DeploymentState("waiting", f"no deployment of version {version} yet")
    deployment = max(mine, key=lambda d: d.get("CreateIndex", 0))
    dep_id, status = deployment.get("ID"), deployment.get("Status")
    reason = deployment.get("StatusDescription") or str(status)
    if status == "successful":
        return DeploymentState("successful", reason, dep_id)
    if status in ("failed", "cancelled"):
        return DeploymentState("failed", reason, dep_id)
    groups = (deployment.get("TaskGroups") or {}).values()
    canary_groups = [g for g in groups if g.get("DesiredCanaries", 0) > 0 and not g.get("Promoted")]
    if canary_groups and all(g.get("HealthyAllocs", 0) >= g["DesiredCanaries"] for g in canary_groups):
        return DeploymentState("canaries_healthy", reason, dep_id)
    healthy = sum(g.get("HealthyAllocs", 0) for g in groups)
    total = sum(g.get("DesiredTotal", 0) for g in groups)
    return DeploymentState("in_progress", f"{reason} ({healthy}/{total} healthy)", dep_id)


def update_block(*, canary: int, max_parallel: int, auto_revert: bool,
                 min_healthy_time_s: float, healthy_deadline_s: float, progress_deadline_s: float) -> dict[str, Any]:
    """The `Update` keys stella sets (next_job keeps the others: HealthCheck, Stagger)."""
    return {"Canary": canary, "MaxParallel": max_parallel, "AutoRevert": auto_revert,
            "AutoPromote": False, "MinHealthyTime": int(min_healthy_time_s * _NS),
            "HealthyDeadline": int(healthy_deadline_s * _NS), "ProgressDeadline": int(progress_deadline_s * _NS)}


def next_job(job: dict[str, Any], images: dict[str, str], meta: dict[str, str],
             update: dict[str, Any]) -> dict[str, Any]:
    """The job spec to register: the read job without its server fields, with only the docker
    `image` of the named tasks changed (task -> `repo@sha256:...`), `meta` merged into the job's
    Meta and `update` (the settings' keys) set on each group that holds a named task."""
    spec = {k: copy.deepcopy(v) for k, v in job.items() if k not in SERVER_FIELDS}
    tasks = docker_tasks(spec)
    missing = sorted(set(images) - set(tasks))
    if missing:
        raise ValueError(f"job {job.get('ID')} has no docker task named {', '.join(missing)} (docker tasks: "
                         f"{', '.join(sorted(tasks)) or 'none'}); map components to tasks with settings.tasks")
    groups = set()
    for name, image in images.items():
        group, task = tasks[name]
        task.setdefault("Config", {})["image"] = image
        groups.add(group)
    for group_spec in spec.get("TaskGroups") or []:
        if group_spec["Name"] in groups:
            group_spec["Update"] = {**(group_spec.get("Update") or {}), **update}
    spec["Meta"] = {**(spec.get("Meta") or {}), **meta}
    return spec
