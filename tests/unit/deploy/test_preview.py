"""The plan shown to approvers: per target what deploying would change, read live with a time
limit per read, an unreadable host as an "unknown" row, and a hash that changes exactly when
what would change does."""

from __future__ import annotations

import threading
import time

from stella_operators.deploy.preview import DeploymentPlan, plan_differences, preview_plan
from tests.unit.promotion.fakes import FakeHost, Workload, digest, estate


class World:
    def __init__(self):
        self.estate = estate()
        self.hosts = {"a": FakeHost("a"), "b": FakeHost("b")}

    def targets(self, config):
        return self.hosts[config.name]


def release(n: int):
    from stella_operators.release.model import ComponentDigest, Release
    from tests.unit.promotion.fakes import T0

    return Release.seal(id=f"rel-shop-{n}", app="shop", name=f"shop-{n}.0.0", created_at=T0, created_by="ci",
                        source={}, components=[ComponentDigest(name="web", repository="reg.local/shop/web",
                                                               digest=digest(n), tag=f"{n}.0.0")])


def run(host: FakeHost, n: int) -> None:
    host.workloads.append(Workload("shop", "web", digest(n), f"dep-{n}", True))


def test_rows_say_current_to_new_per_target_and_the_hash_follows_the_hosts():
    w = World()
    run(w.hosts["a"], 1)
    run(w.hosts["b"], 2)
    plan = preview_plan(w.estate, release(2), "prod", w.targets)
    assert [(r.target, r.diff.changes[0].current, r.diff.changes[0].action) for r in plan.rows] == [
        ("a", digest(1), "replace"), ("b", digest(2), "keep")]
    data = plan.to_dict()
    assert data["targets"][0]["sentences"] == [f"web: sha256:{'0' * 12} -> sha256:{'0' * 12}, replaced"]
    assert data["hash"] == plan.hash and data["unknown"] == []
    # Same hosts, same plan, same hash; and the JSON form (ledger, evidence) gives it back.
    again = preview_plan(w.estate, release(2), "prod", w.targets)
    assert again.hash == plan.hash and DeploymentPlan.from_dict(data).hash == plan.hash
    # A container changed by hand on b: another plan, another hash.
    w.hosts["b"].workloads[0].digest = digest(7)
    changed = preview_plan(w.estate, release(2), "prod", w.targets)
    assert changed.hash != plan.hash
    assert changed.row("b").diff.changes[0].action == "replace"


def test_an_unreadable_host_is_an_unknown_row_not_an_error():
    w = World()

    def refuse(app):
        raise ConnectionError("Connection refused (tcp://b.lab:2375)")

    w.hosts["b"].facts = refuse
    plan = preview_plan(w.estate, release(1), "prod", w.targets)
    assert plan.unknown == ["b"]
    row = plan.to_dict()["targets"][1]
    assert row["unknown"] is True
    assert row["sentences"] == ["could not read host b: Connection refused (tcp://b.lab:2375); "
                                "what would change there is unknown"]
    # The reason is shown, not hashed: another failure of the same host is the same plan.
    w.hosts["b"].facts = lambda app: (_ for _ in ()).throw(TimeoutError("timed out"))
    assert preview_plan(w.estate, release(1), "prod", w.targets).hash == plan.hash


def test_a_host_that_does_not_answer_is_unknown_after_the_time_limit():
    w = World()
    release_it = threading.Event()

    def hang(app):
        release_it.wait(10)
        return FakeHost("b").facts(app)

    w.hosts["b"].facts = hang
    try:
        t0 = time.monotonic()
        plan = preview_plan(w.estate, release(1), "prod", w.targets, timeout_s=0.3)
        took = time.monotonic() - t0
    finally:
        release_it.set()
    assert took < 2.0
    assert plan.unknown == ["b"] and plan.row("b").error == "no answer within 0.3 s"
    assert plan.row("a").diff.changes[0].action == "start"


def test_differences_name_the_host_and_what_changed():
    w = World()
    run(w.hosts["a"], 1)
    approved = preview_plan(w.estate, release(2), "prod", w.targets)
    assert plan_differences(approved, approved) == []
    w.hosts["a"].workloads[0].digest = digest(5)
    now = preview_plan(w.estate, release(2), "prod", w.targets)
    assert plan_differences(approved, now) == [f"a: web ran {digest(1)} when approved, runs {digest(5)} now"]
    w.hosts["a"].workloads.append(Workload("shop", "worker", digest(3), "by-hand", True))
    assert plan_differences(now, preview_plan(w.estate, release(2), "prod", w.targets)) == [
        "a: other components of the app ran none when approved, run worker now"]
    w.hosts["a"].workloads.pop()
    # A host that cannot be read now is a difference (nothing may be deployed unseen) ...
    w.hosts["b"].facts = lambda app: (_ for _ in ()).throw(ConnectionError("down"))
    unreadable = preview_plan(w.estate, release(2), "prod", w.targets)
    assert plan_differences(now, unreadable) == ["could not read host b: down; what would change there is unknown"]
    # ... while a host that was unknown when approved accepts what is found there now.
    del w.hosts["b"].facts
    assert plan_differences(unreadable, now) == []
