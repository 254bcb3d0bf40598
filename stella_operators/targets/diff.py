"""What a deployment would change on one target: a pure function of its facts and its plan.

    diff(facts, plan) -> TargetDiff

The same diff is shown to approvers before anything changes (the plan they approve), decides
what a target's `prepare` touches (components already at their digest and healthy are left
alone, so a re-run converges without restarting anything), and, against the expected digests of
the last verified release, is the drift check. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stella_operators.targets.contract import TargetFacts, TargetPlan

Action = Literal["start", "replace", "restart", "reconfigure", "keep"]
# start:   nothing runs for the component on the target; a workload is started
# replace: another digest runs (or one we cannot trust); the new digest replaces it
# restart: the planned digest runs but is unhealthy; it is replaced by a fresh workload
# reconfigure: the planned digest runs, healthy, but with other settings (ports, env, volumes...:
#          its fingerprint differs from the plan's); it is replaced by a fresh workload
# keep:    the planned digest runs and is not unhealthy; left alone


@dataclass(frozen=True)
class ComponentChange:
    component: str
    current: str | None   # running digest (None: nothing runs, or no trustworthy digest)
    new: str
    action: Action

    def sentence(self) -> str:
        cur = _short(self.current) if self.current else "nothing"
        if self.action == "keep":
            return f"{self.component}: {_short(self.new)} already runs, left alone"
        if self.action == "restart":
            return f"{self.component}: {_short(self.new)} runs but is unhealthy, replaced by a fresh one"
        if self.action == "reconfigure":
            return f"{self.component}: {_short(self.new)} runs with other settings, replaced by a fresh one"
        if self.action == "start":
            return f"{self.component}: nothing runs, start {_short(self.new)}"
        return f"{self.component}: {cur} -> {_short(self.new)}, replaced"


@dataclass(frozen=True)
class TargetDiff:
    target: str
    changes: tuple[ComponentChange, ...]
    unmanaged: tuple[str, ...] = ()  # components of the app running on the target, not in the plan: left alone

    @property
    def changed(self) -> bool:
        return any(c.action != "keep" for c in self.changes)

    def change(self, component: str) -> ComponentChange:
        for c in self.changes:
            if c.component == component:
                return c
        raise KeyError(component)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for REST, evidence and XCom (digests only; never a secret)."""
        return {"target": self.target, "changed": self.changed,
                "changes": [{"component": c.component, "current": c.current, "new": c.new, "action": c.action}
                            for c in self.changes],
                "unmanaged": list(self.unmanaged)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetDiff:
        return cls(target=data["target"],
                   changes=tuple(ComponentChange(c["component"], c["current"], c["new"], c["action"])
                                 for c in data["changes"]),
                   unmanaged=tuple(data.get("unmanaged", ())))

    def sentences(self) -> list[str]:
        return [c.sentence() for c in self.changes] + [f"{u}: not in the release, left alone" for u in self.unmanaged]


def diff(facts: TargetFacts, plan: TargetPlan) -> TargetDiff:
    """Per planned component: start, replace, restart or keep (see `Action`)."""
    changes = []
    for spec in plan.components:
        name, new = spec.component.name, spec.component.digest
        running = facts.components.get(name)
        if running is None:
            action: Action = "start"
            current = None
        elif running.digest != new:
            action, current = "replace", running.digest
        elif running.healthy is False:
            action, current = "restart", running.digest
        elif running.fingerprint is not None and running.fingerprint != spec.fingerprint():
            action, current = "reconfigure", running.digest
        else:
            action, current = "keep", running.digest
        changes.append(ComponentChange(name, current, new, action))
    planned = {s.component.name for s in plan.components}
    unmanaged = tuple(sorted(n for n in facts.components if n not in planned))
    return TargetDiff(target=plan.target, changes=tuple(changes), unmanaged=unmanaged)


def same_plan(approved: TargetDiff, live: TargetDiff) -> bool:
    """True when what would change now is what an approver saw: same components, same current
    and new digests, same actions. A deployment whose live diff differs stops and asks again."""
    return approved.to_dict() == live.to_dict()


def _short(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest
