"""An in-memory host that keeps the Target contract the way the docker target does (commit keeps
the old workload stopped; restore and finalize work from the host's own state), plus a world of
estate + SQLite ledger + signing key for the promotion services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from stella_operators.estate.models import Estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.targets.contract import (
    DeployError,
    PreparedChange,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Workload:
    app: str
    component: str
    digest: str
    deployment: str
    running: bool
    sticker: VersionSticker | None = None


@dataclass
class FakeHost:
    """One host. `workloads` is what the engine would list; hooks make steps fail or block."""

    name: str
    workloads: list[Workload] = field(default_factory=list)
    commit_fails: bool = False
    restore_fails: bool = False
    on_prepare: object = None      # callable(plan) run at the start of prepare (e.g. raise)
    calls: list[str] = field(default_factory=list)
    address: str = ""

    def __post_init__(self):
        self.address = self.address or f"tcp://{self.name}.lab:2375"

    def runs(self, app: str) -> dict[str, str]:
        return {w.component: w.digest for w in self.workloads if w.app == app and w.running}

    def facts(self, app: str) -> TargetFacts:
        comps, sticker = {}, None
        for w in self.workloads:
            if w.app == app and w.running:
                comps[w.component] = RunningComponent(component=w.component, digest=w.digest,
                                                      workload_id=f"{w.component}@{w.digest[-4:]}",
                                                      workload_name=w.component)
                sticker = w.sticker or sticker
        return TargetFacts(target=self.name, app=app, components=comps, sticker=sticker)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        self.calls.append("prepare")
        if callable(self.on_prepare):
            self.on_prepare(plan)
        prepared = PreparedChange(target=self.name)
        for spec in plan.components:
            c = spec.component
            if self.runs(plan.app).get(c.name) == c.digest:
                prepared.unchanged.append(c.name)
                continue
            self.workloads.append(Workload(plan.app, c.name, c.digest, plan.deployment_id, True, plan.sticker))
            prepared.started[c.name] = c.digest
            prepared.to_retire[c.name] = [w.digest for w in self.workloads
                                          if w.app == plan.app and w.component == c.name
                                          and w.deployment != plan.deployment_id]
        return prepared

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("commit")
        if self.commit_fails:
            raise DeployError(self.name, "cannot stop the old container")
        for w in self.workloads:
            if w.app == plan.app and w.component in prepared.to_retire and w.deployment != plan.deployment_id:
                w.running = False

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("discard")
        self.workloads = [w for w in self.workloads if w.deployment != plan.deployment_id]

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self.calls.append("restore")
        if self.restore_fails:
            raise DeployError(f"{self.name} ({self.address})", "the old container is gone")
        self.workloads = [w for w in self.workloads if w.deployment != plan.deployment_id]
        for comp, digest in previous.items():
            if digest is None or any(w.running and w.component == comp and w.digest == digest for w in self.workloads):
                continue
            for w in reversed(self.workloads):
                if w.app == plan.app and w.component == comp and w.digest == digest:
                    w.running = True
                    break

    def finalize(self, plan: TargetPlan) -> None:
        self.calls.append("finalize")
        self.workloads = [w for w in self.workloads if w.running or w.deployment == plan.deployment_id]


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def estate(**env_extra) -> Estate:
    return Estate.model_validate({
        "approver_groups": [{"name": "release-managers", "users": ["bob", "carol"]}],
        "apps": [{"name": app, "components": [{"name": "web", "repository": f"reg.local/{app}/web"}]}
                 for app in ("shop", "cart")],
        "environments": [{"name": "prod", "requires": [],
                          "approvals": {"required": 1, "groups": ["release-managers"]},
                          "targets": [{"name": "a", "type": "fake", "connection": "c_a"},
                                      {"name": "b", "type": "fake", "connection": "c_b"}], **env_extra}]})


class World:
    def __init__(self, tmp_path, clock=None, **env_extra):
        self.estate = estate(**env_extra)
        self.ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", **({"clock": clock} if clock else {}))
        self.key = SigningKey.generate()
        self.hosts = {"a": FakeHost("a"), "b": FakeHost("b")}
        self.n = 0

    def targets(self, config):
        return self.hosts[config.name]

    def release(self, n: int, app: str = "shop") -> Release:
        rel = Release.seal(id=f"rel-{app}-{n}", app=app, name=f"{app}-{n}.0.0", created_at=T0, created_by="ci-bot",
                           source={}, components=[ComponentDigest(name="web", repository=f"reg.local/{app}/web",
                                                                  digest=digest(n), tag=f"{n}.0.0")])
        existing = self.ledger.find_release(app, rel.name)
        return existing or self.ledger.add_release(rel)

    def approved(self, n: int, app: str = "shop", by: str = "alice"):
        self.n += 1
        rel = self.release(n, app)
        promo = self.ledger.create_promotion(app, "prod", rel.id, by, "ship it", "promote", f"run-{self.n}")
        for status in (S.EVALUATING, S.APPROVED):
            promo = self.ledger.transition(promo.id, status, actor="stella")
        return promo

    def running(self, app: str = "shop") -> dict[str, dict[str, str]]:
        return {name: host.runs(app) for name, host in self.hosts.items()}

    def evidence_types(self, promotion_id: str) -> list[str]:
        return [str(e.type) for e in self.ledger.evidence_for(promotion_id=promotion_id)]
