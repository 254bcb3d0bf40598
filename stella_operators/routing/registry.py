"""Router types: found through the entry point group `stella_operators.routers`, their settings
validated at estate load (`blue_green.router.settings`, `canary.router.settings`), built on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from stella_operators.plugin_types import SettingsError, installed_types, pick, validate_block
from stella_operators.routing.contract import Router

ROUTERS_GROUP = "stella_operators.routers"


@dataclass(frozen=True)
class RouterType:
    name: str
    summary: str
    tested_against: str
    settings: type[BaseModel]
    build: Callable[[Any], Router]


class RouterSettingsError(SettingsError):
    """A router's `settings:` block (or its `type`, path "") that cannot be used."""


@cache
def router_types() -> dict[str, RouterType]:
    return installed_types(ROUTERS_GROUP, RouterType)


def router_type(name: str) -> RouterType:
    return pick(router_types(), name, "router")


def validate_router_settings(name: str, settings: dict[str, Any]) -> BaseModel:
    """The parsed settings, or RouterSettingsError with the field path and the problem."""
    try:
        kind = router_type(name)
    except KeyError as exc:
        raise RouterSettingsError("", str(exc.args[0])) from None
    return validate_block(kind.settings, settings, RouterSettingsError, unknown_key=lambda key: "unknown key")


def build_router(name: str, settings: dict[str, Any]) -> Router:
    return router_type(name).build(validate_router_settings(name, settings))
