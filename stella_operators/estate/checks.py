"""Cross-reference checks a schema cannot express: duplicates, unknown references, cycles."""

from __future__ import annotations

from collections.abc import Iterator

from stella_operators.entry_points import stella_entry_points
from stella_operators.estate.models import Estate
from stella_operators.routing.registry import RouterSettingsError, validate_router_settings
from stella_operators.targets.registry import TARGETS_GROUP, TargetSettingsError, validate_settings

TARGET_TYPES_GROUP = TARGETS_GROUP


# Where a problem is in the estate document: keys and list indexes, e.g. ("environments", 0, "targets", 1).
Loc = tuple[str | int, ...]


def known_target_types() -> set[str]:
    return {ep.name for ep in stella_entry_points(TARGET_TYPES_GROUP)}


def cross_check(estate: Estate) -> Iterator[tuple[Loc, str, str]]:
    """Yield (loc, path, message) for every cross-reference problem."""
    loc: Loc
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
            elif target.type in types:
                try:
                    validate_settings(target.type, dict(target.settings))
                except TargetSettingsError as exc:
                    loc = ("environments", i, "targets", j, "settings", *exc.path.split("."))
                    yield loc, _p(loc), exc.message
        sites = {t.site for t in env.targets}
        if len(sites) > 1:
            j = next(k for k, t in enumerate(env.targets) if t.site != env.targets[0].site)
            loc = ("environments", i, "targets", j, "site")
            where = ", ".join(f"{t.name}: {t.site or 'control plane'}" for t in env.targets)
            yield loc, _p(loc), (f"the targets of environment {env.name!r} are in different sites ({where}); "
                                 "an environment deploys from one place: give them one site, or split the "
                                 "environment into one per site")
        routed = env.blue_green or env.canary
        if routed is not None:
            try:
                validate_router_settings(routed.router.type, dict(routed.router.settings))
            except RouterSettingsError as exc:
                loc = ("environments", i, env.strategy, "router", *(("settings", *exc.path.split("."))
                                                                    if exc.path else ("type",)))
                yield loc, _p(loc), exc.message
    yield from _gates_and_approvals(estate)
    yield from _published_ports(estate)
    yield from _unsupported_runtime(estate)
    cycle = _find_cycle(estate)
    if cycle:
        i = env_names.index(cycle[0])
        loc = ("environments", i, "requires")
        yield loc, _p(loc), f"promotion path has a cycle: {' -> '.join(cycle)}; make the path a DAG"
    hosts = {r.host for r in estate.registries}
    for i, app in enumerate(estate.apps):
        for j, env_name in enumerate(app.environments or []):
            if env_name not in env_names:
                loc = ("apps", i, "environments", j)
                yield loc, _p(loc), f"unknown environment {env_name!r} (known: {', '.join(env_names)})"
        for j, comp in enumerate(app.components):
            host = comp.repository.split("/", 1)[0]
            if host not in hosts:
                loc = ("apps", i, "components", j, "repository")
                yield loc, _p(loc), (f"registry {host!r} is not declared; add it under registries "
                                     f"(- host: {host}) with its scheme and connection")


def _unsupported_runtime(estate: Estate) -> Iterator[tuple[Loc, str, str]]:
    """A component field that a target type of an environment the app goes to does not implement."""
    from stella_operators.targets.registry import RUNTIME_FIELDS, target_types, uses

    installed = target_types()
    for i, app in enumerate(estate.apps):
        reported: set[tuple[int, str]] = set()
        for env in estate.app_environments(app.name):
            for t in env.targets:
                kind = installed.get(t.type)
                for j, comp in enumerate(app.components):
                    for name in RUNTIME_FIELDS:
                        if kind is None or name not in kind.unsupported or not uses(comp, name) \
                                or (j, name) in reported:
                            continue
                        reported.add((j, name))
                        loc: Loc = ("apps", i, "components", j, name)
                        yield loc, _p(loc), (f"{name} is not yet supported by {t.type} targets (environment "
                                             f"{env.name!r}, target {t.name!r}); remove it, or deploy {app.name!r} "
                                             "there with a target type that supports it (docker)")


def _gates_and_approvals(estate: Estate) -> Iterator[tuple[Loc, str, str]]:
    from stella_operators.gates.contract import GateConfigError
    from stella_operators.gates.registry import build_gate, gate_types

    loc: Loc
    groups = {g.name for g in estate.approver_groups}
    types = gate_types({spec.get("type") for env in estate.environments for spec in env.gates})
    for i, env in enumerate(estate.environments):
        if env.approvals:
            for j, g in enumerate(env.approvals.groups):
                if g not in groups:
                    loc = ("environments", i, "approvals", "groups", j)
                    yield loc, _p(loc), (f"unknown approver group {g!r}; declare it under approver_groups "
                                         f"(known: {', '.join(sorted(groups)) or 'none'})")
            if env.approvals.required and not env.approvals.groups:
                loc = ("environments", i, "approvals", "groups")
                yield loc, _p(loc), "approvals are required but no approver group may give them; name a group"
        names: dict[str, int] = {}
        for j, spec in enumerate(env.gates):
            base: Loc = ("environments", i, "gates", j)
            try:
                gate = build_gate(spec, types=types)
            except GateConfigError as exc:
                parts = tuple(int(p) if p.isdigit() else p for p in exc.path.split(".") if p)
                loc = base + parts
                yield loc, _p(loc), exc.message
                continue
            if gate.name in names:
                loc = base + ("name",)
                yield loc, _p(loc), f"duplicate gate name {gate.name!r} (first at gates[{names[gate.name]}]); set name:"
            names[gate.name] = j


def _published_ports(estate: Estate) -> Iterator[tuple[Loc, str, str]]:
    """Every app of an environment runs on all its targets: two components publishing the same
    host port there would fight over it (the second never starts)."""
    said: set[Loc] = set()
    for env in estate.environments:
        taken: dict[tuple[int, str], tuple[str, Loc]] = {}
        for i, app in enumerate(estate.apps):
            if app.environments is not None and env.name not in app.environments:
                continue
            for j, comp in enumerate(app.components):
                for k, port in enumerate(comp.ports):
                    loc: Loc = ("apps", i, "components", j, "ports", k, "published")
                    key = (port.published, port.protocol)
                    first = taken.get(key)
                    if first is not None and first[1][:4] != loc[:4] and loc not in said:
                        said.add(loc)
                        yield loc, _p(loc), (f"{port.protocol} port {port.published} is already published by "
                                             f"{first[0]} ({_p(first[1])}) on the targets of environment "
                                             f"{env.name}; pick another published port")
                    elif first is None:
                        taken[key] = (f"{app.name}/{comp.name}", loc)


def _duplicates(estate: Estate) -> Iterator[tuple[Loc, str, str]]:
    def dup(items: list[str], loc_prefix: Loc, what: str) -> Iterator[tuple[Loc, str, str]]:
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
    yield from dup([g.name for g in estate.approver_groups], ("approver_groups",), "approver group")
    for i, app in enumerate(estate.apps):
        yield from dup([c.name for c in app.components], ("apps", i, "components"), "component")
    seen: dict[str, Loc] = {}
    for i, env in enumerate(estate.environments):
        for j, t in enumerate(env.targets):
            loc: Loc = ("environments", i, "targets", j, "name")
            if t.name in seen:
                yield (loc, _p(loc),
                       f"duplicate target {t.name!r} (first at {_p(seen[t.name])}); target names are global")
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


def _p(loc: Loc) -> str:
    from stella_operators.estate.loader import format_loc

    return format_loc(loc)
