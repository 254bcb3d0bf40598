"""Find gate types through the `stella_operators.gates` entry points and build them from the estate."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from stella_operators.gates.contract import GATES_GROUP, Gate, GateConfigError


def gate_types() -> dict[str, type]:
    return {ep.name: ep.load() for ep in entry_points(group=GATES_GROUP)}


def build_gate(spec: dict[str, Any], *, types: dict[str, type] | None = None) -> Gate:
    """`spec` is one entry of an environment's `gates:` list: `type`, optional `name`, the rest config."""
    types = gate_types() if types is None else types
    spec = dict(spec)
    gtype = spec.pop("type", None)
    if gtype not in types:
        raise GateConfigError("type", f"unknown gate type {gtype!r} (installed: {', '.join(sorted(types))})")
    name = spec.pop("name", None) or gtype
    cls = types[gtype]
    try:
        config = cls.Config.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = f"unknown key {err['loc'][-1]!r} for a {gtype} gate" if err["type"] == "extra_forbidden" else err["msg"]
        raise GateConfigError(path, msg) from None
    return cls(name, config)
