"""Target type `nomad`: one Nomad service job (docker driver), through python-nomad."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stella_operators.targets.registry import TargetType

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target


class NomadSettings(BaseModel):
    """An estate target's `settings:` for a Nomad job (each key has an effect, see target.py).

    The job's `update` block of every task group holding a released task is set from these keys;
    `auto_promote` is always false: stella promotes the canaries itself when every target of the
    deployment is prepared (the commit of the two-phase deploy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str = Field(min_length=1, description="job ID (the job must exist; its spec is kept, images change)")
    namespace: str | None = Field(None, description="Nomad namespace (default: the agent's)")
    region: str | None = Field(None, description="Nomad region (default: the agent's)")
    tasks: dict[str, str] = Field(default_factory=dict,
                                  description="component -> task name in the job (default: the component's name)")
    canary: int = Field(1, ge=0, le=100, description="canaries per task group; 0: rolling update without canaries")
    max_parallel: int = Field(1, ge=1, le=1000, description="allocations replaced at a time")
    auto_revert: bool = Field(True, description="Nomad reverts to the last stable version when the deployment fails")
    min_healthy_time_s: float = Field(10, ge=0, description="an allocation must be healthy this long to count")
    healthy_deadline_s: float = Field(300, gt=0, description="an allocation not healthy by then is unhealthy")
    progress_deadline_s: float = Field(600, ge=0, description="0: off; else fails a deployment making no progress")
    deployment_timeout_s: float = Field(900, gt=0, description="stella fails the deployment after this long")
    poll_interval_s: float = Field(2.0, gt=0, le=300, description="deployment poll interval")

    @model_validator(mode="after")
    def _deadlines(self) -> NomadSettings:
        if self.progress_deadline_s and self.progress_deadline_s < self.healthy_deadline_s:
            raise ValueError("progress_deadline_s must be 0 or at least healthy_deadline_s (Nomad refuses the job)")
        return self


def _build(target: TargetConfig, settings: Any) -> Target:
    from stella_operators.hooks.nomad import NomadHook
    from stella_operators.targets.nomad.target import NomadTarget

    client = NomadHook(target.connection, namespace=settings.namespace, region=settings.region).get_conn()
    return NomadTarget(target.name, client, settings)


TARGET_TYPE = TargetType(
    name="nomad",
    summary="a Nomad service job: digest-pinned docker images, update block with canaries and auto_revert",
    tested_against="a fake Nomad HTTP API written from Nomad's API documentation (devstack/fakes/nomad.py), not Nomad",
    settings=NomadSettings,
    build=_build,
    # the job owns ports, networks, volumes and limits: the component's runtime fields are refused
    unsupported=("ports", "networks", "volumes", "restart", "limits", "env_from", "role"),
)
