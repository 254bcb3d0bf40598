"""The `settings:` block of a plugin (a target type, a router type) checked against its pydantic
model, with the first problem reported as (path in the block, message) the way estate checks show it.

No import of the estate or of a registry here: both registries use it, and the estate imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError


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
