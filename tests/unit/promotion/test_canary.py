"""Canary steps through the promotion services (SQLite ledger, in-memory hosts and router): the
walk 10 -> 50 -> 100, a failed step sending traffic back before any host is restored, a rollback
after a dead worker finding the recorded steps, hold, and router `none` (share of targets)."""

from __future__ import annotations

import pytest

from stella_operators.promotion import canary
from stella_operators.promotion import strategies as strategies_module
from stella_operators.promotion.canary import CanaryStopped, decide, take_step
from stella_operators.promotion.recovery import roll_back_promotion
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from stella_operators.promotion.strategies import SWITCH
from stella_operators.routing.none import NoneRouter
from tests.unit.deploy.memory import RouterInMemory
from tests.unit.promotion.fakes import Workload, digest
from tests.unit.promotion.test_strategies import Fleet

GROUPS = {"h1": "stable", "h2": "stable", "h3": "canary", "h4": "canary", "h5": "canary"}
CANARY = {"strategy": "canary",
          "canary": {"router": {"type": "haproxy", "settings": {"socket": "/x", "backend": "web"}},
                     "steps": [10, 50], "bake_s": 0, "switch_back_s": 60}}


class Recorder(RouterInMemory):
    """Also notes, in one list with the hosts' restores, the moment traffic left the new group."""

    def __init__(self, servers, events):
        super().__init__(servers)
        self.events = events

    def shift(self, group, percent):
        # Per-server weights that give the group its share whatever the group sizes (as HAProxy's).
        sizes = {g: len(s) for g, s in self.route.groups.items()}
        other = next(g for g in sizes if g != group)
        for g, servers in self.route.groups.items():
            for s in servers:
                self.weights[s] = percent * sizes[other] if g == group else (100 - percent) * sizes[group]
        self.log.append(f"shift {group} {percent}")
        self.events.append(f"shift {group} {percent}")


@pytest.fixture
def fleet(tmp_path, clock, monkeypatch):
    f = Fleet(tmp_path, clock, groups=GROUPS, **CANARY)
    events: list[str] = []
    f.router = Recorder({"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0}, events)
    f.events = events
    for n in ("h1", "h2"):
        f.hosts[n].workloads.append(Workload("shop", "web", digest(1), "dep-0", True))
    monkeypatch.setattr(strategies_module, "router_of", lambda env: f.router)
    yield f
    f.ledger.close()


def begin(fleet):
    promo = fleet.approved(2)
    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    return promo


def test_the_release_waits_on_the_idle_group_with_no_traffic(fleet):
    promo = begin(fleet)
    assert fleet.status(promo) == "deploying"   # the step tasks go on under the lock
    assert fleet.router.distribution() == {"stable": 100, "canary": 0}
    assert fleet.running()["h3"] == {"web": digest(2)} and fleet.running()["h1"] == {"web": digest(1)}
    assert "enable canary" in fleet.router.log
    assert fleet.ledger.locks_held_by(promo.id)


def test_a_healthy_canary_walks_its_steps_then_verifies_the_new_group(fleet):
    promo = begin(fleet)
    seen = []
    for k in range(3):
        step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, k, fleet.targets)
        seen.append((step.weight, step.distribution["canary"]))
        decide(fleet.estate, fleet.ledger, fleet.key, promo.id, step, fleet.targets, decision="advance",
               decided_by="stella", analysis={"outcome": "pass"})
    assert seen == [(10, 10), (50, 50), (100, 100)]
    assert fleet.status(promo) == "verifying"
    fleet.verify(promo)
    assert fleet.status(promo) == "deployed"
    assert fleet.evidence_types(promo.id).count("canary") == 3
    [dep] = fleet.ledger.deployments_for(promo.id)
    switches = [e.detail for e in fleet.ledger.audit_events(f"deployment:{dep.id}") if e.action == SWITCH]
    assert switches[-1] == {"group": "canary", "previous_group": "stable"}   # the switch-back window starts at 100 %
    record = [e for e in fleet.ledger.evidence_for(promotion_id=promo.id) if str(e.type) == "canary"][0]
    body = record.content if hasattr(record, "content") else record.payload
    assert "weight" in str(body) and "decided_by" in str(body)


def test_a_failed_step_sends_traffic_back_before_any_host_is_restored(fleet):
    promo = begin(fleet)
    step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 0, fleet.targets)
    def noting(host):
        real = host.restore

        def restore(plan, prev):
            fleet.events.append(f"restore {host.name}")
            return real(plan, prev)
        return restore

    for n in ("h3", "h4", "h5"):
        fleet.hosts[n].restore = noting(fleet.hosts[n])
    fleet.events.clear()
    status = decide(fleet.estate, fleet.ledger, fleet.key, promo.id, step, fleet.targets, decision="rollback",
                    decided_by="stella", reason="analysis failed: error-rate 0.2 >= 0.05",
                    analysis={"outcome": "fail"})
    assert status == "rolled_back" and fleet.status(promo) == "rolled_back"
    assert fleet.events[0] == "shift stable 100" and fleet.events.index("shift stable 100") < fleet.events.index(
        "restore h3")
    assert fleet.router.distribution() == {"stable": 100, "canary": 0}
    assert fleet.running()["h3"] == {} and fleet.running()["h1"] == {"web": digest(1)}
    assert {"canary", "rollback"} <= set(fleet.evidence_types(promo.id))
    assert not fleet.ledger.locks_held_by(promo.id)


def test_a_rollback_after_a_dead_worker_finds_the_step_and_sends_traffic_back(fleet):
    promo = begin(fleet)
    take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 1, fleet.targets)   # 50 %, then the worker dies
    assert fleet.router.distribution()["canary"] == 50
    report = roll_back_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets,
                                 reason="a deploy task failed and left the deployment unfinished")
    assert report.ok and fleet.router.distribution() == {"stable": 100, "canary": 0}
    assert fleet.running()["h4"] == {}


def test_hold_stays_at_the_weight_and_a_router_that_lies_stops_the_canary(fleet):
    promo = begin(fleet)
    step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 0, fleet.targets)
    assert decide(fleet.estate, fleet.ledger, fleet.key, promo.id, step, fleet.targets, decision="hold",
                  decided_by="bob") == "deploying"
    assert fleet.router.distribution()["canary"] == 10
    fleet.router.distribution = lambda: {"stable": 100, "canary": 0}   # ignores the weights it was given
    with pytest.raises(CanaryStopped, match="asked for 50 % to canary"):
        take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 1, fleet.targets)
    assert fleet.status(promo) == "rolled_back" and fleet.running()["h3"] == {}


def test_router_none_deploys_the_share_of_targets_at_each_step(tmp_path, clock, monkeypatch):
    fleet = Fleet(tmp_path, clock, strategy="canary", canary={"router": {"type": "none"}, "steps": [20, 50],
                                                              "bake_s": 0})
    # Built directly: the venv may not list the `none` entry point until it is reinstalled.
    monkeypatch.setattr(strategies_module, "router_of", lambda env: NoneRouter())
    promo = begin(fleet)
    assert all(not r for r in fleet.running().values())
    shares = []
    for k in range(3):
        step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, k, fleet.targets)
        shares.append((step.weight, sorted(n for n, r in fleet.running().items() if r), step.distribution["release"]))
        decide(fleet.estate, fleet.ledger, fleet.key, promo.id, step, fleet.targets, decision="advance",
               decided_by="stella")
    assert shares == [(20, ["h1"], 20), (50, ["h1", "h2", "h3"], 60), (100, ["h1", "h2", "h3", "h4", "h5"], 100)]
    verify_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets)
    assert fleet.status(promo) == "deployed"
    fleet.ledger.close()


def test_lease_outlives_the_bake_and_the_analysis(fleet):
    env = fleet.estate.environment("prod")
    assert canary.step_lease_s(env) >= env.lock_lease_s


def test_the_switch_back_window_starts_at_100_percent_then_the_stable_set_is_retired(fleet, clock):
    from datetime import timedelta

    from stella_operators.promotion.retire import retire_due_at, retire_previous_set
    from stella_operators.targets.contract import VersionSticker

    rel = fleet.release(1)
    for n in ("h1", "h2"):  # the stable set, started by an earlier deployment (named in its sticker)
        fleet.hosts[n].workloads[-1].sticker = VersionSticker(
            app="shop", release_id=rel.id, release_name=rel.name, content_hash=rel.content_hash,
            components=list(rel.components), deployment_id="dep-0", promotion_id="p-0", environment="prod",
            target=n, strategy="canary", deployed_at="2026-03-01")
    promo = begin(fleet)
    for k in range(3):
        if k == 2:
            clock.now += timedelta(minutes=10)   # the canary took its time before reaching 100 %
        step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, k, fleet.targets)
        decide(fleet.estate, fleet.ledger, fleet.key, promo.id, step, fleet.targets, decision="advance",
               decided_by="stella")
    fleet.verify(promo)
    assert retire_due_at(fleet.estate, fleet.ledger, promo.id) == clock.now + timedelta(seconds=60)
    res = retire_previous_set(fleet.estate, fleet.ledger, promo.id, fleet.targets)
    assert res.group == "stable" and res.removed == ["h1", "h2"]
    assert fleet.running()["h1"] == {} and fleet.running()["h3"] == {"web": digest(2)}


def test_a_resumed_step_is_rebuilt_from_the_ledger_and_the_router(fleet):
    from stella_operators.promotion.canary import current_step, last_analysis, record_analysis

    promo = begin(fleet)
    taken = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 1, fleet.targets)
    again = current_step(fleet.estate, fleet.ledger, promo.id, 1)
    assert (again.step, again.of, again.weight, again.group, again.previous_group) == (2, 3, 50, "canary", "stable")
    assert again.distribution == taken.distribution == {"stable": 50, "canary": 50}
    assert last_analysis(fleet.ledger, again) is None
    record_analysis(fleet.ledger, again, {"outcome": "inconclusive", "summary": "no data"})
    assert last_analysis(fleet.ledger, again)["outcome"] == "inconclusive"
    with pytest.raises(Exception, match="step 3 was never taken"):
        current_step(fleet.estate, fleet.ledger, promo.id, 2)


def test_analysis_queries_name_the_group_that_got_the_release(fleet):
    """Which group gets a release alternates: the queries' variables follow it, step by step."""
    promo = begin(fleet)
    step = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, 0, fleet.targets)
    values = canary.query_values(fleet.estate, fleet.ledger, promo.id, step)
    release = fleet.ledger.get_release(fleet.ledger.get_promotion(promo.id).release_id)
    assert values == {"group": "canary", "previous_group": "stable", "targets": "h3|h4|h5",
                      "previous_targets": "h1|h2", "release": release.name}
