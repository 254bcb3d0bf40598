"""Router types: found through the entry point group `stella_operators.routers`, their settings
validated at estate load (`blue_green.router.settings`, `canary.router.settings`), built on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from stella_operators.entry_points import stella_entry_points
from stella_operators.routing.contract import Router

ROUTERS_GROUP = "stella_operators.routers"


@dataclass(frozen=True)
class RouterType:
    name: str
    summary: str
    tested_against: str
    settings: type[BaseModel]
    build: Callable[[Any], Router]


class RouterSettingsError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


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
    try:
        return kind.settings.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise RouterSettingsError(path, msg) from None


def build_router(name: str, settings: dict[str, Any]) -> Router:
    return router_type(name).build(validate_router_settings(name, settings))
