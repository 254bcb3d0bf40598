"""Router types: found through the entry point group `stella_operators.routers`, their settings
validated at estate load (`blue_green.router.settings`), built on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from stella_operators.entry_points import stella_entry_points
from stella_operators.routing.contract import Router
from stella_operators.settings_errors import SettingsError, validate_block

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
    found: dict[str, RouterType] = {}
    for ep in stella_entry_points(ROUTERS_GROUP):
        obj = ep.load()
        if not isinstance(obj, RouterType):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a stella RouterType")
        found[ep.name] = obj
    return found


def router_type(name: str) -> RouterType:
    types = router_types()
    if name not in types:
        raise KeyError(f"no installed router type {name!r} (installed: {', '.join(sorted(types)) or 'none'})")
    return types[name]


def validate_router_settings(name: str, settings: dict[str, Any]) -> BaseModel:
    """The parsed settings, or RouterSettingsError with the field path and the problem."""
    try:
        kind = router_type(name)
    except KeyError as exc:
        raise RouterSettingsError("", str(exc.args[0])) from None
    return validate_block(kind.settings, settings, RouterSettingsError, unknown_key=lambda key: "unknown key")


def build_router(name: str, settings: dict[str, Any]) -> Router:
    return router_type(name).build(validate_router_settings(name, settings))
