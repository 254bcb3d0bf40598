"""In-memory targets and router for strategy tests (milliseconds, no I/O)."""

from __future__ import annotations

import threading

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import (
    ComponentSpec,
    DeployError,
    PreparedChange,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)

OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64


class Board:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down: set[str] = set()
        self.peak = 0
        self.order: list[str] = []      # prepare order
        self.events: list[str] = []

    def leave(self, name: str) -> None:
        with self.lock:
            self.down.add(name)
            self.peak = max(self.peak, len(self.down))
            self.order.append(name)

    def back(self, name: str) -> None:
        with self.lock:
            self.down.discard(name)


class HostInMemory:
    def __init__(self, name: str, board: Board, *, fail: bool = False, restore_fails: bool = False):
        self.name, self.board, self.fail, self.restore_fails = name, board, fail, restore_fails
        self.running = {"web": OLD}
        self.calls: list[str] = []

    def facts(self, app: str) -> TargetFacts:
        comps = {c: RunningComponent(component=c, digest=d, workload_id=c, workload_name=c)
                 for c, d in self.running.items()}
        return TargetFacts(target=self.name, app=app, components=comps, sticker=None)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        self.calls.append("prepare")
        self.board.leave(self.name)
        prepared = PreparedChange(target=self.name, started={"web": "new"}, to_retire={"web": ["old"]})
        if self.running["web"] == NEW:
            self.board.back(self.name)
            return PreparedChange(target=self.name, unchanged=["web"])
        if self.fail:
            raise DeployError(self.name, "web: container unhealthy", prepared=prepared)
        return prepared

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("commit")
        self.running["web"] = NEW
        self.board.back(self.name)

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("discard")
        if not self.restore_fails:
            self.board.back(self.name)

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self.calls.append("restore")
        if self.restore_fails:
            raise DeployError(self.name, "old container is gone")
        self.running = {c: d for c, d in previous.items() if d is not None}
        self.board.back(self.name)

    def finalize(self, plan: TargetPlan) -> None:
        self.calls.append("finalize")


class BrokenAfterDiscard(HostInMemory):
    """Its discard cannot bring it back: it stays unavailable (counts against max_unavailable)."""

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        self.calls.append("prepare")
        self.board.leave(self.name)
        prepared = PreparedChange(target=self.name, started={"web": "new"}, to_retire={"web": ["old"]})
        self.running = {}
        raise DeployError(self.name, "engine died mid-switch", prepared=prepared)

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("discard")


def plan(target: str) -> TargetPlan:
    comps = [ComponentDigest(name="web", repository="reg.local/shop/web", digest=NEW)]
    sticker = VersionSticker(app="shop", release_id="r1", release_name="1.0", content_hash=NEW, components=comps,
                             deployment_id="dep-1", promotion_id="p1", environment="prod", target=target,
                             strategy="rolling", deployed_at="2026-01-01T00:00:00Z")
    return TargetPlan(app="shop", environment="prod", target=target, deployment_id="dep-1",
                      components=(ComponentSpec(component=comps[0]),), sticker=sticker)


class RouterInMemory:
    """Weights per server and a health flag per server, like HAProxy's runtime view."""

    name = "router-in-memory"

    def __init__(self, servers: dict[str, int], *, never_healthy: set[str] | None = None,
                 refuse_shift_to: str | None = None):
        self.weights = dict(servers)
        self.enabled = {s: True for s in servers}
        self.never_healthy = never_healthy or set()
        self.refuse_shift_to = refuse_shift_to
        self.route = None
        self.log: list[str] = []

    def configure(self, route) -> None:
        missing = [s for s in route.servers() if s not in self.weights]
        if missing:
            from stella_operators.routing import RouterError
            raise RouterError(f"no server {missing}")
        self.route = route

    def validate(self) -> list[str]:
        return []

    def shift(self, group: str, percent: int) -> None:
        from stella_operators.routing import RouterError

        if group == self.refuse_shift_to and percent == 100:
            raise RouterError("runtime API refused the weight")
        self.log.append(f"shift {group} {percent}")
        for g, servers in self.route.groups.items():
            for s in servers:
                self.weights[s] = percent if g == group else 100 - percent

    def distribution(self) -> dict[str, int]:
        totals = {g: sum(self.weights[s] for s in ss if self.enabled[s]) for g, ss in self.route.groups.items()}
        total = sum(totals.values())
        return {g: round(100 * w / total) if total else 0 for g, w in totals.items()}

    def healthy(self, group: str) -> dict[str, bool]:
        return {s: self.enabled[s] and s not in self.never_healthy for s in self.route.groups[group]}

    def enable(self, group: str) -> None:
        self.log.append(f"enable {group}")
        for s in self.route.groups[group]:
            self.enabled[s] = True

    def disable(self, group: str) -> None:
        self.log.append(f"disable {group}")
        for s in self.route.groups[group]:
            self.enabled[s] = False
