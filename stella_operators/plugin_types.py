"""What the registries of plugin types (targets/registry.py, routing/registry.py) share: finding
the installed types through their entry point group, picking one by name, and checking a
`settings:` block against the type's pydantic model, the first problem reported as (path in the
block, message) the way estate checks show it.

No import of the estate or of a registry here: both registries use it, and the estate imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stella_operators.entry_points import stella_entry_points

T = TypeVar("T")


def installed_types(group: str, cls: type[T]) -> dict[str, T]:
    """Every type published under entry point `group`, by entry point name; each must be a `cls`."""
    found: dict[str, T] = {}
    for ep in stella_entry_points(group):
        obj = ep.load()
        if not isinstance(obj, cls):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a stella {cls.__name__}")
        found[ep.name] = obj
    return found


def pick(types: dict[str, T], name: str, what: str) -> T:
    """`types[name]`; KeyError naming the installed ones (`what`: "target", "router")."""
    if name not in types:
        raise KeyError(f"no installed {what} type {name!r} (installed: {', '.join(sorted(types)) or 'none'})")
    return types[name]


class SettingsError(ValueError):
    """A `settings:` block its model refuses: `path` is relative to the block (dotted, "" for the
    block itself), `message` says what is wrong there."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


E = TypeVar("E", bound=SettingsError)


def validate_block(model: type[BaseModel], settings: dict[str, Any], error: type[E], *,
                   unknown_key: Callable[[str], str]) -> BaseModel:
    """`settings` parsed by `model`; else `error(path, message)` for its first problem, an extra key
    worded by `unknown_key(key)` (the models forbid extra keys)."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = unknown_key(str(err["loc"][-1])) if err["type"] == "extra_forbidden" else err["msg"]
        raise error(path, msg) from None
