"""Target type `winrm`: Windows services running versioned app folders, driven over WinRM (pywinrm)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stella_operators.targets.registry import TargetType

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target


class WinrmSettings(BaseModel):
    """An estate target's `settings:` for a Windows host (each key has an effect, see target.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: dict[str, str] = Field(
        min_length=1, description="component -> Windows service that runs <root>\\<app>\\<component>\\current")
    root: str = Field("C:\\stella", description="folder holding the apps' versions on the host")
    image_path: str = Field("C:\\app", description="folder copied out of each release image (docker cp)")
    start_timeout_s: float = Field(30, gt=0, le=3600, description="a started service must be Running by then")
    command_timeout_s: float = Field(300, gt=0, le=7200, description="WinRM operation timeout of one script")

    @field_validator("root", "image_path")
    @classmethod
    def _windows_path(cls, v: str) -> str:
        if len(v) < 3 or v[1:3] != ":\\":
            raise ValueError("must be an absolute Windows path like C:\\stella")
        return v.rstrip("\\")


def _build(target: TargetConfig, settings: Any) -> Target:
    from stella_operators.hooks.winrm import WinrmHook
    from stella_operators.targets.winrm.target import WinrmTarget

    return WinrmTarget(target.name, WinrmHook(target.connection, timeout_s=settings.command_timeout_s).get_conn(),
                       settings)


TARGET_TYPE = TargetType(
    name="winrm",
    summary="Windows services running versioned app folders copied out of the release images, over WinRM",
    tested_against="a fake WS-Management endpoint with simulated PowerShell (devstack/fakes/winrm.py), not Windows",
    settings=WinrmSettings,
    build=_build,
    # the Windows service owns its runtime: the component's runtime fields are refused
    unsupported=("ports", "networks", "volumes", "restart", "limits", "env_from", "role"),
)
