"""Pydantic models of the estate file. Structure only; cross-references live in checks.py."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from stella_operators.deploy.ab_plan import check_ab_groups
from stella_operators.estate.base import (  # noqa: F401  (re-exported: the estate's types live here too)
    ConnId,
    HostPort,
    LabelKey,
    LabelValue,
    Name,
    Repository,
    _Strict,
)
from stella_operators.estate.strategy_settings import (  # noqa: F401  (re-exported)
    AbSettings,
    BlueGreenSettings,
    CanarySettings,
    Progression,
    RollingSettings,
    RouterConfig,
)
from stella_operators.targets.contract import HealthCheck
from stella_operators.targets.runtime import RuntimeSettings


class Registry(_Strict):
    """An OCI registry the estate pulls from; credentials live in the Airflow Connection."""

    host: HostPort = Field(description="host[:port] as it appears at the start of repository names")
    scheme: Literal["https", "http"] = "https"
    connection: ConnId | None = Field(None, description="Airflow Connection with login/password")
    verify_tls: bool = True


class Component(RuntimeSettings):
    """One image of an app and how it runs. The runtime fields (role, ports, networks, volumes,
    restart, limits, env_from) are documented in targets/runtime.py; each has an effect on every
    target type that accepts it."""

    name: Name
    repository: Repository = Field(description="registry-host/repository, no tag and no digest")
    version_strategy: Literal["semver", "date", "sequential", "manual"] = "semver"
    accept: Literal["tags", "digests"] = Field(
        "tags", description="'digests': releases must name this component by digest, tags are refused")
    command: list[str] | None = None
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    health: HealthCheck | None = None

    @model_validator(mode="after")
    def _env_once(self) -> Component:
        both = sorted(set(self.env) & set(self.env_from))
        if both:
            raise ValueError(f"{both[0]} is set in both env and env_from; keep one")
        if self.run_once and self.health is not None:
            raise ValueError(f"a {self.role} component runs to completion: its exit code is its check, "
                             f"remove health")
        return self


class App(_Strict):
    name: Name
    components: list[Component] = Field(min_length=1)
    environments: list[Name] | None = Field(None, description="subset of environments; default all")


class TargetConfig(_Strict):
    name: Name
    type: Name = Field(description="target type, e.g. docker (see `stella target-types`)")
    connection: ConnId = Field(description="Airflow Connection id of the host; secrets live there")
    labels: dict[LabelKey, LabelValue] = {}
    group: Name | None = None
    settings: dict[str, Any] = Field(
        default_factory=dict, description="settings of the target's type (see `stella target-types --json`)")
    site: Name | None = Field(
        None, description="remote site the control plane cannot reach: the target is deployed by an Airflow Edge "
                          "worker serving the queue of this name (all targets of an environment share one site)")


class ApproverGroup(_Strict):
    """A named set of approvers, mapped onto Airflow identities: user names and/or Airflow roles."""

    name: Name
    users: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@+-]{1,128}$")]] = []
    roles: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ .-]{1,64}$")]] = []


class ApprovalRequirement(_Strict):
    required: int = Field(1, ge=0, le=20, description="distinct eligible approvers needed (0: none)")
    groups: list[Name] = Field(default_factory=list, description="approver groups whose members may approve")
    separation_of_duties: bool = Field(True, description="the requester and the release creator may not approve")
    timeout_s: float = Field(86400, gt=0, le=30 * 86400, description="then the promotion fails closed")


class PromotionSchedule(_Strict):
    """Promote on a timetable: each tick promotes the release last verified upstream; ticks inside
    this environment's freeze windows are skipped (FreezeAwareCronTimetable)."""

    cron: Annotated[str, StringConstraints(pattern=r"^[0-9*,/ A-Za-z?-]{9,100}$")]
    timezone: str = "UTC"


class DriftCheck(_Strict):
    """Check on a timetable that every target runs what the ledger last verified here (drift DAG
    `stella_drift__<app>__<env>`); drift fails the run and is recorded, never fixed silently."""

    schedule: Annotated[str, StringConstraints(pattern=r"^\S+( \S+){4}$")] = Field(
        description="cron expression of five fields, e.g. '*/15 * * * *'")
    timezone: str = Field("UTC", description="time zone the cron expression is read in (IANA name)")

    @field_validator("schedule")
    @classmethod
    def _cron_chars(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9*,/ A-Za-z?-]{9,100}", value):
            raise ValueError(f"{value!r} is not a cron expression of five fields (e.g. '*/15 * * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'UTC' or "
                             "'Europe/Berlin'") from None
        return value


class Environment(_Strict):
    name: Name
    requires: list[Name] | None = Field(
        None, description="environments a release must be verified in first; default: the previous one")
    targets: list[TargetConfig] = Field(min_length=1)
    strategy: Literal["all_at_once", "rolling", "blue_green", "canary", "ab"] = "all_at_once"
    rolling: RollingSettings | None = Field(None, description="settings of `strategy: rolling` (required there)")
    blue_green: BlueGreenSettings | None = Field(
        None, description="settings of `strategy: blue_green` (required there)")
    canary: CanarySettings | None = Field(None, description="settings of `strategy: canary` (required there)")
    ab: AbSettings | None = Field(None, description="settings of `strategy: ab` (required there)")
    max_parallel: int = Field(4, ge=1, le=256)
    deploy_timeout_s: float = Field(900, gt=0, le=86400)
    health_timeout_s: float = Field(60, gt=0, le=3600)
    on_failure: Literal["rollback", "pause", "continue"] = Field(
        "rollback", description="a batch failed (rolling only for pause/continue): rollback = restore every target "
                                "changed so far; pause = stop, keep the finished batches, record the rest for a "
                                "human; continue = skip the failed targets (restored) and go on")
    auto_promote: bool = Field(False, description="run when the upstream environment verifies a release")
    approvals: ApprovalRequirement | None = None
    schedule: PromotionSchedule | None = None
    gates: list[dict[str, Any]] = Field(
        default_factory=list, description="gate entries: {type: security|freeze|policy|..., name?, ...config}")
    max_active_promotions: int = Field(
        16, ge=1, le=1024,
        description="promotion runs at once (waiting for approval); deploys are serialized by the lock")
    lock: Literal["wait", "refuse"] = Field(
        "wait", description="when another promotion is deploying here: wait (deferred) or refuse")
    lock_scope: Literal["app", "environment"] = Field(
        "app", description="deploy lock per app in this environment (app), or one deployment at a time "
                           "in the whole environment (environment)")
    drift: DriftCheck | None = Field(
        None, description="drift check on a schedule; without it the drift DAG runs only when triggered")
    lock_lease_s: float = Field(
        120, ge=10, le=3600, description="the deploy lock's lease: renewed while deploying; a lock not renewed "
                                         "for this long (the worker died) is taken over and its deployment rolled back")


    @model_validator(mode="after")
    def _strategy_settings(self) -> Environment:
        for name in ("rolling", "blue_green", "canary", "ab"):
            given = getattr(self, name) is not None
            if given and self.strategy != name:
                raise ValueError(f"`{name}:` settings are only read with `strategy: {name}` (this environment uses "
                                 f"{self.strategy}); remove them or change the strategy")
            if self.strategy == name and not given:
                raise ValueError(f"`strategy: {name}` needs a `{name}:` block")
        if self.on_failure != "rollback" and self.strategy != "rolling":
            raise ValueError(f"on_failure: {self.on_failure} needs strategy: rolling; {self.strategy} changes its "
                             "targets all or nothing, so a failure always rolls back")
        groups = (self.blue_green.groups if self.blue_green is not None
                  else self.canary.group_names() if self.canary is not None else None)
        if groups is not None:
            a, b = groups
            if a == b:
                raise ValueError(f"{self.strategy}.groups names the group {a} twice; name two different target groups")
            for g in (a, b):
                if not any(t.group == g for t in self.targets):
                    raise ValueError(f"{self.strategy} group {g} has no targets; set `group: {g}` on its targets")
            stray = [t.name for t in self.targets if t.group not in (a, b)]
            if stray:
                raise ValueError(f"targets {', '.join(stray)} are in neither {self.strategy} group ({a}, {b}); give "
                                 "each target `group:` one of them")
        if self.ab is not None:
            check_ab_groups(self.ab.groups, self.ab.stages, [(t.name, t.group) for t in self.targets])
        return self


def environment_site(env: Environment) -> str | None:
    """The remote site an environment's targets are in (None: reachable from the control plane).
    Estate validation guarantees one site per environment."""
    return env.targets[0].site


class Estate(_Strict):
    version: Literal[1] = 1
    registries: list[Registry] = []
    approver_groups: list[ApproverGroup] = []
    apps: list[App] = Field(min_length=1)
    environments: list[Environment] = Field(min_length=1)

    def app(self, name: str) -> App:
        return next(a for a in self.apps if a.name == name)

    def environment(self, name: str) -> Environment:
        return next(e for e in self.environments if e.name == name)

    def registry_for(self, repository: str) -> Registry | None:
        host = repository.split("/", 1)[0]
        return next((r for r in self.registries if r.host == host), None)

    def upstream(self, env: str) -> list[str]:
        """Environments a release must be verified in before entering `env`."""
        e = self.environment(env)
        if e.requires is not None:
            return list(e.requires)
        names = [x.name for x in self.environments]
        i = names.index(env)
        return [names[i - 1]] if i > 0 else []

    def app_environments(self, app: str) -> list[Environment]:
        wanted = self.app(app).environments
        return [e for e in self.environments if wanted is None or e.name in wanted]
