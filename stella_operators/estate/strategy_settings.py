"""The estate's per-environment strategy blocks (`rolling:`, `blue_green:`, `canary:`, `ab:`) and the
router they name. Structure only; what each field does is in deploy/ and promotion/."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from stella_operators.deploy.canary_plan import StepPlanError, from_progression, from_steps
from stella_operators.estate.base import ConnId, Name, _Strict


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
