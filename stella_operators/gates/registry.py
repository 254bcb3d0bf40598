"""Find gate types through the `stella_operators.gates` entry points and build them from the estate."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from pydantic import ValidationError

from stella_operators.entry_points import stella_entry_points
from stella_operators.gates.contract import GATES_GROUP, Gate, GateConfigError


def gate_types(names: Set[str | None] | None = None) -> dict[str, type]:
    """Installed gate types; with `names`, import only those (DAG parsing pays for what it uses).
    Names that are not installed still appear in the error `build_gate` raises, via `known`."""
    eps = stella_entry_points(GATES_GROUP)
    loaded = {ep.name: ep.load() for ep in eps if names is None or ep.name in names}
    return _Known(loaded, known=sorted(ep.name for ep in eps))


class _Known(dict[str, type]):
    """The loaded gate types, remembering every installed name for error messages."""

    def __init__(self, loaded: dict[str, type], *, known: list[str]):
        super().__init__(loaded)
        self.known = known


def build_gate(spec: dict[str, Any], *, types: dict[str, type] | None = None) -> Gate:
    """`spec` is one entry of an environment's `gates:` list: `type`, optional `name`, the rest config."""
    types = gate_types() if types is None else types
    spec = dict(spec)
    gtype = spec.pop("type", None)
    if gtype not in types:
        installed = getattr(types, "known", sorted(types))
        raise GateConfigError("type", f"unknown gate type {gtype!r} (installed: {', '.join(installed)})")
    name = spec.pop("name", None) or gtype
    cls: Any = types[gtype]  # a gate class: a pydantic `Config` and `(name, config)`
    try:
        config = cls.Config.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = f"unknown key {err['loc'][-1]!r} for a {gtype} gate" if err["type"] == "extra_forbidden" else err["msg"]
        raise GateConfigError(path, msg) from None
    gate: Gate = cls(name, config)
    return gate
