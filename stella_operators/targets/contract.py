"""The contract every target type implements, and the data that crosses it.

A deployment is two-phase so that a failure anywhere leaves every host as it was:
  prepare  - pull by digest, verify the digest, start the new workload beside the old, health check
  commit   - switch: stop the old workload but keep it, so that the switch can be undone
  discard  - undo a prepare (remove what it started; the old workload was never touched)
  restore  - undo a deployment at any point, from the target's own state: remove what the
             deployment started and bring back the previous workload (what commit stopped)
  finalize - once the deployment is verified: remove the old workloads commit kept
`restore` and `finalize` need no PreparedChange: a process that died mid-deployment leaves only
the ledger (deployment id, previous digests) and the hosts, and a retry must be able to finish
the job from those. Both are idempotent.
Facts are read-only: what runs now, at which digest, with which sticker.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.runtime import RuntimeSettings


class HealthCheck(BaseModel):
    """Container-level health check; `command` runs inside the workload (Docker HEALTHCHECK form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str]
    interval_s: float = 1.0
    timeout_s: float = 3.0
    retries: int = 3
    start_period_s: float = 0.0


class ComponentSpec(RuntimeSettings):
    """What to run for one component on a target: the pinned image plus runtime settings
    (role, ports, networks, volumes, restart, limits, env_from: see targets/runtime.py).
    Holds no secret: `env_from` is a reference, resolved by the target at deploy time."""

    component: ComponentDigest
    command: list[str] | None = None
    env: dict[str, str] = {}
    health: HealthCheck | None = None

    def fingerprint(self) -> str:
        """sha256 of how the component runs apart from its image: command, env (estate values,
        not secrets by design), env_from *references*, health and the runtime fields. A workload
        carrying another fingerprint runs the same digest with other settings (diff: reconfigure).
        Resolved env_from values are never part of it (a hash of a secret is not for labels)."""
        data = self.model_dump(mode="json", exclude={"component"})
        return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class VersionSticker(BaseModel):
    """`stella.version.json`: what a target should be running, written on each deployment."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    app: str
    release_id: str
    release_name: str
    content_hash: str
    components: list[ComponentDigest]
    deployment_id: str
    promotion_id: str
    environment: str
    target: str
    strategy: str
    deployed_at: str


@dataclass(frozen=True)
class TargetPlan:
    """Everything one target needs to reach the release: built by the deploy planner."""

    app: str
    environment: str
    target: str
    deployment_id: str
    components: tuple[ComponentSpec, ...]
    sticker: VersionSticker
    health_timeout_s: float = 60.0
    run_timeout_s: float = 600.0  # how long a run-once component (init, migration) may take


@dataclass
class RunningComponent:
    component: str
    digest: str | None  # None when the running image carries no repo digest we can trust
    workload_id: str
    workload_name: str
    healthy: bool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None  # ComponentSpec.fingerprint() it was started with (None: unknown)


@dataclass
class TargetFacts:
    """Read-only state of one target for one app."""

    target: str
    app: str
    components: dict[str, RunningComponent]
    sticker: VersionSticker | None

    def digests(self) -> dict[str, str | None]:
        return {name: rc.digest for name, rc in self.components.items()}


@dataclass
class PreparedChange:
    """What `prepare` did on a target, enough for `commit` or `discard` to finish the job."""

    target: str
    unchanged: list[str] = field(default_factory=list)           # components already at the digest
    started: dict[str, str] = field(default_factory=dict)        # component -> new workload id
    to_retire: dict[str, list[str]] = field(default_factory=dict)  # component -> old workload ids
    # component -> a workload created but not started, because it needs something the old one
    # holds until commit (a published host port): commit stops the old one, then starts it
    switch_at_commit: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    # files written on the host that an auditor wants a copy of (file name -> text, e.g. the compose
    # lock file): the deploy task puts them in the evidence locker. Never secrets.
    host_files: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.switch_at_commit or any(self.to_retire.values()))


class DeployError(RuntimeError):
    """A deployment step failed on a target; the message says where and why (never a secret)."""

    def __init__(self, target: str, message: str, *, prepared: PreparedChange | None = None):
        super().__init__(f"{target}: {message}")
        self.target = target
        self.prepared = prepared


class Target(Protocol):
    """One host (or service) of a given type, bound to its transport."""

    name: str

    def facts(self, app: str) -> TargetFacts: ...

    def prepare(self, plan: TargetPlan) -> PreparedChange: ...

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None: ...

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None: ...

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        """Make the target run `previous` (component -> digest, None: nothing) again, undoing
        deployment `plan.deployment_id` whatever phase it reached; raise DeployError naming what
        could not be restored."""
        ...

    def finalize(self, plan: TargetPlan) -> None:
        """The deployment is verified: remove the old workloads of `plan.app` that commit kept."""
        ...


class Cancellable(Protocol):
    """Optional for a Target: `cancel()` makes a prepare in flight stop soon (raising DeployError
    with what it started, for the rollback). The engine calls it when its task is interrupted,
    which must then roll back within Airflow's grace period before SIGKILL (5 s)."""

    def cancel(self) -> None: ...


@runtime_checkable
class Parkable(Protocol):
    """Optional for a Target: `park(plan)` stops every running workload of `plan.app` and keeps it,
    so that `restore(plan, previous)` starts it again (the workloads commit keeps, without a new
    release). A/B deployments stop group A's share this way (deploy/ab.py); types without it
    cannot be in an `ab` environment."""

    name: str

    def park(self, plan: TargetPlan) -> None: ...


def sticker_labels(sticker: VersionSticker) -> dict[str, Any]:
    """Labels that carry the sticker on a workload (full JSON plus the fields people filter on)."""
    return {
        "stella.app": sticker.app,
        "stella.release.id": sticker.release_id,
        "stella.release.name": sticker.release_name,
        "stella.release.content_hash": sticker.content_hash,
        "stella.deployment.id": sticker.deployment_id,
        "stella.promotion.id": sticker.promotion_id,
        "stella.environment": sticker.environment,
        "stella.target": sticker.target,
        "stella.version.json": sticker.model_dump_json(),
    }
