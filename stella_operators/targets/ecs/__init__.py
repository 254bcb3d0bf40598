"""Target type `ecs`: one Amazon ECS service, through the Amazon provider's EcsHook and its aws Connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stella_operators.targets.registry import TargetType

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target


class EcsSettings(BaseModel):
    """An estate target's `settings:` for an ECS service (each key has an effect, see target.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = Field(min_length=1, description="cluster name or ARN")
    service: str = Field(min_length=1, description="service name or ARN in the cluster")
    region: str | None = Field(None, description="AWS region; default: the aws Connection's region")
    containers: dict[str, str] = Field(
        default_factory=dict,
        description="component -> container name in the task definition (default: the component's own name)")
    minimum_healthy_percent: int = Field(100, ge=0, le=100, description="rolling update: lower bound of running tasks")
    maximum_percent: int = Field(200, ge=100, le=400, description="service deployment: upper bound of running tasks")
    strategy: Literal["ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"] = Field(
        "ROLLING", description="the service's own deployment strategy (LINEAR/CANARY/BLUE_GREEN need a load balancer)")
    bake_time_minutes: int | None = Field(None, ge=0, le=1440, description="BLUE_GREEN/LINEAR/CANARY: bake time")
    canary_percent: float | None = Field(None, ge=0.1, le=100, description="CANARY: traffic share of the canary")
    canary_bake_time_minutes: int | None = Field(None, ge=0, le=1440, description="CANARY: wait before the rest")
    linear_step_percent: float | None = Field(None, ge=3, le=100, description="LINEAR: traffic shifted per step")
    linear_step_bake_time_minutes: int | None = Field(None, ge=0, le=1440, description="LINEAR: wait between steps")
    circuit_breaker: bool = Field(True, description="ECS deployment circuit breaker on")
    circuit_breaker_rollback: bool = Field(True, description="the breaker rolls a failed deployment back itself")
    rollout_timeout_s: float = Field(600, gt=0, description="then the rollout counts as failed and is rolled back")
    poll_interval_s: float = Field(5.0, gt=0, le=300, description="describe_services poll interval while waiting")

    @model_validator(mode="after")
    def _consistent(self) -> EcsSettings:
        if self.circuit_breaker_rollback and not self.circuit_breaker:
            raise ValueError("circuit_breaker_rollback needs circuit_breaker: true (or set it to false)")
        # A key of another strategy would be ignored by ECS: refuse it rather than accept it silently.
        for prefix, strategy in (("canary_", "CANARY"), ("linear_", "LINEAR")):
            keys = [k for k in type(self).model_fields if k.startswith(prefix) and getattr(self, k) is not None]
            if keys and self.strategy != strategy:
                raise ValueError(f"{', '.join(keys)} only apply with strategy: {strategy} "
                                 f"(strategy is {self.strategy})")
        if self.bake_time_minutes is not None and self.strategy == "ROLLING":
            raise ValueError("bake_time_minutes does not apply to strategy: ROLLING")
        return self


def _build(target: TargetConfig, settings: Any) -> Target:
    from airflow.providers.amazon.aws.hooks.ecs import EcsHook

    from stella_operators.targets.ecs.target import EcsTarget

    client = EcsHook(aws_conn_id=target.connection, region_name=settings.region).conn
    return EcsTarget(target.name, client, settings)


TARGET_TYPE = TargetType(
    name="ecs",
    summary="an Amazon ECS service: digest-pinned task definition revision, rolling update, circuit breaker",
    tested_against="moto's ECS server (moto_server), not AWS",
    settings=EcsSettings,
    build=_build,
    # the task definition owns ports, networks, volumes and limits: the component's runtime fields are refused
    unsupported=("ports", "networks", "volumes", "restart", "limits", "env_from", "role"),
)
