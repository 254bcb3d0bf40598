"""Entry points of stella's own groups (target types, gate types), also when stella-operators is
not pip-installed.

A deployment that mounts DAGs and plugins folders with the package importable from a path (the
Astro-style layout, `plugins/stella_plugin.py`) has no distribution metadata, hence none of the
entry points pyproject.toml declares: without this fallback, no built-in target or gate type
would exist there. Installed distributions (ours or a third party's) are always listed; the
built-ins are added only when the stella-operators distribution is absent, so nothing is found
twice. tests/unit/test_entry_points.py keeps BUILT_IN equal to pyproject.toml.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points

DISTRIBUTION = "stella-operators"
PLUGIN_OBJECT = "stella_operators.plugin:StellaPlugin"

BUILT_IN: dict[str, dict[str, str]] = {
    "stella_operators.targets": {
        "docker": "stella_operators.targets.docker:TARGET_TYPE",
        "compose": "stella_operators.targets.compose:TARGET_TYPE",
        "ssh": "stella_operators.targets.ssh:TARGET_TYPE",
        "ecs": "stella_operators.targets.ecs:TARGET_TYPE",
        "nomad": "stella_operators.targets.nomad:TARGET_TYPE",
        "winrm": "stella_operators.targets.winrm:TARGET_TYPE",
    },
    "stella_operators.gates": {
        "freeze": "stella_operators.gates.freeze.gate:FreezeGate",
        "policy": "stella_operators.gates.policy.gate:PolicyGate",
        "provenance": "stella_operators.gates.provenance.gate:ProvenanceGate",
        "security": "stella_operators.gates.security.gate:SecurityGate",
    },
    "stella_operators.routers": {
        "haproxy": "stella_operators.routing.haproxy:ROUTER_TYPE",
        "nginx": "stella_operators.routing.nginx:ROUTER_TYPE",
        "none": "stella_operators.routing.none:ROUTER_TYPE",
    },
}


@cache
def distribution_installed() -> bool:
    try:
        distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return False
    return True


@cache
def _stella_groups() -> dict[str, tuple[EntryPoint, ...]]:
    """Installed entry points of stella's groups, read once per process and in one pass: every
    lookup reads the metadata of every installed distribution (hundreds of files: ~0.15 s per
    lookup on a loaded machine with a few hundred distributions), and an estate check at each task
    start needs both groups."""
    everything = entry_points()
    return {group: tuple(everything.select(group=group)) for group in BUILT_IN}


def _installed(group: str) -> tuple[EntryPoint, ...]:
    if group in BUILT_IN:
        return _stella_groups()[group]
    return tuple(entry_points(group=group))


def stella_entry_points(group: str) -> list[EntryPoint]:
    """Entry points of `group`, plus stella's built-ins when the distribution is not installed.
    Packages installed after the first lookup in a process are seen by the next process (as with
    Airflow's own providers)."""
    eps = list(_installed(group))
    if not distribution_installed():
        have = {ep.name for ep in eps}
        eps += [EntryPoint(name, value, group) for name, value in BUILT_IN.get(group, {}).items() if name not in have]
    return eps


def plugin_entry_point_installed() -> bool:
    """True when Airflow will load our plugin from the `airflow.plugins` entry point."""
    return any(ep.value.replace(" ", "") == PLUGIN_OBJECT for ep in entry_points(group="airflow.plugins"))
