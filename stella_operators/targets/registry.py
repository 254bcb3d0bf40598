"""Target types: the one place that finds them, validates their settings and builds them.

A target type is a `TargetType` object published under the entry point group
`stella_operators.targets` (pyproject.toml; `entry_points.BUILT_IN` without a pip install). It
names its pydantic `Settings` model (what an estate target's `settings:` block may hold for that
type; extra keys are refused) and a `build(target, settings)` factory. Importing the entry point
must stay cheap (DAG parsing validates estates): heavy clients are imported inside `build`.

    from stella_operators.targets.registry import build_target, target_types
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from stella_operators.plugin_types import SettingsError, installed_types, pick, validate_block

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target

TARGETS_GROUP = "stella_operators.targets"


class NoSettings(BaseModel):
    """For target types that take no settings: any key under `settings:` is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TargetType:
    """One kind of target (docker, compose, ssh, ...).

    :param name: the estate's `type:` value.
    :param summary: one line for `stella target-types` and the README's support table.
    :param tested_against: the peer the test suite runs this type against (real server or fake).
    :param settings: pydantic model of the target's `settings:` block (use extra="forbid").
    :param build: `(target, settings) -> Target`; imports its clients lazily.
    :param unsupported: runtime fields of a component (`ports`, `networks`, `volumes`, `restart`,
        `limits`, `env_from`, `role` for init/migration) this type does not implement yet.
    """

    name: str
    summary: str
    tested_against: str
    settings: type[BaseModel]
    build: Callable[[TargetConfig, Any], Target]
    # Component runtime fields (targets/runtime.py) this type does not implement yet: the estate
    # refuses them for apps deployed to environments with targets of this type.
    unsupported: tuple[str, ...] = ()


class TargetSettingsError(SettingsError):
    """A target's `settings:` block does not fit its type: `path` is relative to the block."""


@cache
def target_types() -> dict[str, TargetType]:
    """Every installed target type by name (entry points, cached for the process)."""
    return installed_types(TARGETS_GROUP, TargetType)


def target_type(name: str) -> TargetType:
    return pick(target_types(), name, "target")


def validate_settings(type_name: str, settings: dict[str, Any]) -> BaseModel:
    """The typed settings of one target; TargetSettingsError names the first offending key."""
    model = target_type(type_name).settings

    def unknown_key(key: str) -> str:
        allowed = ", ".join(sorted(model.model_fields)) or "none"
        return f"unknown key {key!r} for a {type_name} target (allowed: {allowed})"

    return validate_block(model, settings, TargetSettingsError, unknown_key=unknown_key)


def build_target(target: TargetConfig) -> Target:
    """Instantiate the Target for an estate target through its type."""
    kind = target_type(target.type)
    return kind.build(target, validate_settings(target.type, dict(target.settings)))


RUNTIME_FIELDS = ("ports", "networks", "volumes", "restart", "limits", "env_from", "role")


def uses(component: Any, field: str) -> bool:
    """Whether an estate component sets runtime `field` (role: only the run-once roles count)."""
    value = getattr(component, field, None)
    if field == "role":
        return value in ("init", "migration")
    return bool(value)
