"""Cross-reference checks a schema cannot express: duplicates, unknown references, cycles."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points

from stella_operators.estate.models import Estate

TARGET_TYPES_GROUP = "stella_operators.targets"


def known_target_types() -> set[str]:
    return {ep.name for ep in entry_points(group=TARGET_TYPES_GROUP)}


def cross_check(estate: Estate) -> Iterator[tuple[tuple, str, str]]:
    """Yield (loc, path, message) for every cross-reference problem."""
    yield from _duplicates(estate)
    env_names = [e.name for e in estate.environments]
    types = known_target_types()
    for i, env in enumerate(estate.environments):
        for j, req in enumerate(env.requires or []):
            loc = ("environments", i, "requires", j)
            if req == env.name:
                yield loc, _p(loc), f"environment {env.name!r} cannot require itself"
            elif req not in env_names:
                yield loc, _p(loc), f"unknown environment {req!r} (known: {', '.join(env_names)})"
        for j, target in enumerate(env.targets):
            if types and target.type not in types:
                loc = ("environments", i, "targets", j, "type")
                yield loc, _p(loc), (f"unknown target type {target.type!r} (installed: {', '.join(sorted(types))};"
                                     " install the extra that provides it)")
    cycle = _find_cycle(estate)
    if cycle:
        i = env_names.index(cycle[0])
        loc = ("environments", i, "requires")
        yield loc, _p(loc), f"promotion path has a cycle: {' -> '.join(cycle)}; make the path a DAG"
    hosts = {r.host for r in estate.registries}
    for i, app in enumerate(estate.apps):
        for j, env in enumerate(app.environments or []):
            if env not in env_names:
                loc = ("apps", i, "environments", j)
                yield loc, _p(loc), f"unknown environment {env!r} (known: {', '.join(env_names)})"
        for j, comp in enumerate(app.components):
            host = comp.repository.split("/", 1)[0]
            if host not in hosts:
                loc = ("apps", i, "components", j, "repository")
                yield loc, _p(loc), (f"registry {host!r} is not declared; add it under registries "
                                     f"(- host: {host}) with its scheme and connection")


def _duplicates(estate: Estate) -> Iterator[tuple[tuple, str, str]]:
    def dup(items, loc_prefix, what):
        seen: dict[str, int] = {}
        for idx, name in enumerate(items):
            if name in seen:
                loc = (*loc_prefix, idx, "name" if what != "registry" else "host")
                yield loc, _p(loc), f"duplicate {what} {name!r} (first at {_p((*loc_prefix, seen[name]))})"
            else:
                seen[name] = idx

    yield from dup([a.name for a in estate.apps], ("apps",), "app")
    yield from dup([e.name for e in estate.environments], ("environments",), "environment")
    yield from dup([r.host for r in estate.registries], ("registries",), "registry")
    for i, app in enumerate(estate.apps):
        yield from dup([c.name for c in app.components], ("apps", i, "components"), "component")
    seen: dict[str, tuple] = {}
    for i, env in enumerate(estate.environments):
        for j, t in enumerate(env.targets):
            loc = ("environments", i, "targets", j, "name")
            if t.name in seen:
                yield loc, _p(loc), f"duplicate target {t.name!r} (first at {_p(seen[t.name])}); target names are global"
            else:
                seen[t.name] = loc


def _find_cycle(estate: Estate) -> list[str] | None:
    names = {e.name for e in estate.environments}
    graph = {e.name: [r for r in estate.upstream(e.name) if r in names and r != e.name] for e in estate.environments}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in graph[n]:
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _p(loc: tuple) -> str:
    from stella_operators.estate.loader import format_loc

    return format_loc(loc)
