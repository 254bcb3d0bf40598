"""Pydantic models of the estate file. Structure only; cross-references live in checks.py."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stella_operators.deploy.ab_plan import check_ab_groups
from stella_operators.deploy.canary_plan import StepPlanError, from_progression, from_steps
from stella_operators.targets.contract import HealthCheck
from stella_operators.targets.runtime import RuntimeSettings

# Names reach command lines, container names, DAG ids and file paths: no shell metacharacters.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")]
LabelValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/@+-]{0,128}$")]
Repository = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.:\[\]-]+/[a-z0-9]+(?:[._/-][a-z0-9]+)*$")]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class RollingSettings(_Strict):
    """`strategy: rolling`: targets change batch by batch, in estate order (deploy/rollout.py)."""

    batch_size: int | None = Field(None, ge=1, le=1024, description="targets per batch")
    batch_percent: float | None = Field(
        None, gt=0, le=100, description="targets per batch as a share of the environment (rounded up, >= 1)")
    max_unavailable: int | None = Field(
        None, ge=1, le=1024,
        description="targets changed at once, counting targets a failure left unrestored; default: the batch "
                    "size. Smaller than the batch size: a batch changes in waves of this many")
    pause_s: float = Field(0, ge=0, le=86400, description="wait between batches")

    @model_validator(mode="after")
    def _one_size(self) -> RollingSettings:
        if (self.batch_size is None) == (self.batch_percent is None):
            raise ValueError("give exactly one of batch_size (targets) or batch_percent (share of the environment)")
        return self


class RouterConfig(_Strict):
    """The router in front of the targets (routing/registry.py lists the types and their settings)."""

    type: Name = Field(description="router type, e.g. haproxy")
    settings: dict[str, Any] = Field(default_factory=dict, description="settings of the router type")


class BlueGreenSettings(_Strict):
    """`strategy: blue_green`: two target groups; the idle one gets the release, then traffic switches."""

    groups: tuple[Name, Name] = Field(("blue", "green"), description="the two target groups (targets' `group`)")
    router: RouterConfig
    switch_back_s: float = Field(
        300, ge=0, le=7 * 86400,
        description="the previous set keeps running this long after the switch (instant switch-back), then "
                    "its workloads are removed")
    ready_timeout_s: float = Field(60, gt=0, le=3600, description="wait this long for the router to see the "
                                                                  "new set healthy before switching")


class AbSettings(_Strict):
    """`strategy: ab`: A/B by target groups, for workers without HTTP traffic (queue consumers).
    The group that runs the app now (A) is scaled down while the other (B) is scaled up with the
    release, stage by stage, each stage checked against a health threshold (deploy/ab.py)."""

    groups: tuple[Name, Name] = Field(
        description="the two target groups (targets' `group`): the one running the app now is A, the release goes "
                    "to the other; when neither runs it yet, to the first")
    stages: list[Annotated[int, Field(gt=0, le=100)]] = Field(
        [25, 50, 100], min_length=1, max_length=20,
        description="share of the fleet (percent) moved to B after each stage: strictly increasing, ending at 100")
    health_threshold: float | list[float] = Field(
        100, description="percent of B's started targets that must stay healthy during a stage's wait before A's "
                         "share stops: one value for every stage, or one per stage")
    stage_wait_s: float = Field(
        30, ge=0, le=86400, description="how long B's new share runs, its health read all along, before the stage "
                                        "stops A's share")

    @field_validator("stages")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        for before, after in zip(value, value[1:], strict=False):
            if after <= before:
                raise ValueError(f"stages must be strictly increasing: {after} follows {before}")
        if value[-1] != 100:
            raise ValueError(f"the last stage must be 100 (the whole fleet on the release), not {value[-1]}")
        return value

    @field_validator("health_threshold", mode="before")
    @classmethod
    def _number_or_list(cls, value: Any) -> Any:
        numbers = value if isinstance(value, list) else [value]
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            raise ValueError(f"give a percent (e.g. 90) or a list of one percent per stage, not {value!r}")
        return value

    @field_validator("health_threshold")
    @classmethod
    def _one_per_stage(cls, value: float | list[float], info: ValidationInfo) -> float | list[float]:
        for n in value if isinstance(value, list) else [value]:
            if not 0 < n <= 100:
                raise ValueError(f"a threshold is a percent of B's started targets, more than 0 and at most 100, "
                                 f"not {n:g}")
        stages = info.data.get("stages")
        if isinstance(value, list) and stages is not None and len(value) != len(stages):
            raise ValueError(f"give one threshold per stage ({len(stages)} stages: {stages}), not {len(value)}; "
                             "or one number for every stage")
        return value

    def thresholds(self) -> list[float]:
        """The health threshold of each stage."""
        if isinstance(self.health_threshold, list):
            return list(self.health_threshold)
        return [self.health_threshold] * len(self.stages)


class Progression(_Strict):
    """Canary steps computed instead of listed (deploy/canary_plan.py)."""

    kind: Literal["linear", "exponential", "fibonacci"]
    start: int = Field(ge=1, le=100, description="traffic share of the first step, percent")
    step: int | None = Field(None, ge=1, le=99, description="linear: percent added per step")
    factor: float | None = Field(None, gt=1, le=10, description="exponential: factor per step")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Progression:
        wanted = {"linear": "step", "exponential": "factor", "fibonacci": None}[self.kind]
        for name in ("step", "factor"):
            if getattr(self, name) is not None and name != wanted:
                raise ValueError(f"`{name}` is not read by a {self.kind} progression; remove it")
        if wanted is not None and getattr(self, wanted) is None:
            raise ValueError(f"a {self.kind} progression needs `{wanted}`")
        return self


class CanarySettings(_Strict):
    """`strategy: canary`: the release goes to the idle target group, then traffic moves to it step by
    step (bake, analyse, then advance, roll back or ask a human); router `none`: the step's share of
    the targets (estate order, rounded up) runs the release instead (promotion/canary.py)."""

    router: RouterConfig
    groups: tuple[Name, Name] | None = Field(
        None, description="the two target groups (targets' `group`); default (stable, canary); not with router none")
    steps: list[int] | None = Field(None, description="traffic shares in percent, e.g. [10, 50, 100]")
    progression: Progression | None = Field(None, description="or computed shares (linear, exponential, fibonacci)")
    bake_s: float = Field(60, ge=0, le=86400, description="wait this long at each step before the analysis")
    analysis: dict[str, Any] | None = Field(
        None, description="metrics measured at each step (analysis/model.py); without it a step passes after its bake")
    metrics_conn_id: ConnId = Field("stella_prometheus", description="Airflow Connection of the metrics provider")
    on_inconclusive: Literal["ask", "rollback", "advance"] = Field(
        "ask", description="an inconclusive analysis: ask a human in the Airflow UI, roll back, or advance")
    ask_timeout_s: float = Field(3600, gt=0, le=7 * 86400, description="nobody answered: roll back")
    switch_back_s: float = Field(
        300, ge=0, le=7 * 86400,
        description="after 100 % the previous set keeps running this long (instant switch-back), then it is removed")
    ready_timeout_s: float = Field(60, gt=0, le=3600, description="wait this long for the router to see the new "
                                                                  "set healthy before the first step")

    @field_validator("analysis")
    @classmethod
    def _analysis(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Imported here, not at the top: CEL (celpy, lark) costs ~0.15 s, paid at every task start
        # that loads the estate; only an estate with a canary analysis needs it.
        from pydantic import ValidationError

        from stella_operators.analysis.model import Analysis, check_variables

        if value is None:
            return None
        try:
            analysis = Analysis.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValueError(f"{where}: {msg}" if where else msg) from None
        check_variables(analysis)
        return analysis.model_dump(mode="json")

    @model_validator(mode="after")
    def _one_plan(self) -> CanarySettings:
        if (self.steps is None) == (self.progression is None):
            raise ValueError("give exactly one of `steps` (e.g. [10, 50, 100]) or `progression`")
        try:
            self.plan()
        except StepPlanError as exc:
            raise ValueError(f"{exc.field}: {exc.message}") from None
        if self.router.type == "none" and self.groups is not None:
            raise ValueError("router none moves traffic by updating targets, not groups: remove `groups`")
        return self

    def plan(self) -> tuple[int, ...]:
        """The steps' traffic shares, ending at 100."""
        if self.steps is not None:
            return from_steps(list(self.steps))
        assert self.progression is not None
        p = self.progression
        return from_progression(p.kind, p.start, step=p.step, factor=p.factor)

    def group_names(self) -> tuple[str, str] | None:
        """The two target groups, None with router none."""
        if self.router.type == "none":
            return None
        return self.groups or ("stable", "canary")


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
