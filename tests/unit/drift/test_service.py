"""The drift check as a service (SQLite ledger, in-memory hosts): it records every outcome, names
what differs, changes nothing, and stays out of the way of a deployment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stella_operators.drift.service import DeploymentInProgress, check_drift, last_drift_check
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from tests.unit.promotion.fakes import digest


def ship(world, n):
    promo = world.approved(n)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    return promo


def check(world, **kw):
    return check_drift(world.estate, world.ledger, "shop", "prod", world.targets, actor="airflow:scheduler", **kw)


def test_no_drift_is_recorded_with_when_it_was_checked(world, clock):
    ship(world, 1)
    clock.now += timedelta(minutes=5)
    report = check(world)
    assert not report.drifted and report.message() == "no drift: every target of shop in prod runs shop-1.0.0"
    last = last_drift_check(world.ledger, "shop", "prod")
    assert last["status"] == "ok" and last["checked_at"] == clock.now.isoformat() and not last["superseded"]


def test_a_changed_host_is_drift_named_in_the_ledger_and_left_as_it_is(world, clock):
    ship(world, 1)
    world.hosts["b"].workloads[0].digest = digest(66)      # someone ran another image by hand
    world.hosts["a"].workloads[0].running = False           # ...and stopped the other host's container
    before = [list(h.workloads) for h in world.hosts.values()]
    clock.now += timedelta(minutes=5)
    report = check(world, run={"dag_id": "stella_drift__shop__prod", "run_id": "r1"})
    assert report.drifted
    assert [f.sentence() for f in report.findings] == [
        f"a: web: expected {digest(1)}, nothing runs",
        f"b: web: expected {digest(1)}, running {digest(66)}"]
    assert [list(h.workloads) for h in world.hosts.values()] == before  # never fixed silently
    [event] = [e for e in world.ledger.audit_events("drift:shop/prod")]
    assert event.action == "drift.detected" and event.actor == "airflow:scheduler"
    assert event.detail["run"] == {"dag_id": "stella_drift__shop__prod", "run_id": "r1"}
    assert world.ledger.verify_audit_chain()[0]
    last = last_drift_check(world.ledger, "shop", "prod")
    assert last["status"] == "drift" and len(last["findings"]) == 2


def test_drift_found_before_the_next_verified_deployment_is_superseded(world, clock):
    ship(world, 1)
    world.hosts["a"].workloads[0].running = False
    clock.now += timedelta(minutes=1)
    assert check(world).drifted
    clock.now += timedelta(minutes=1)
    ship(world, 2)
    assert last_drift_check(world.ledger, "shop", "prod")["superseded"] is True


def test_an_unreachable_host_is_reported_not_passed(world):
    ship(world, 1)

    def targets(config):
        if config.name == "b":
            raise ConnectionError("tcp://b.lab:2375: connection refused")
        return world.hosts[config.name]

    report = check_drift(world.estate, world.ledger, "shop", "prod", targets)
    assert [(f.target, f.kind) for f in report.findings] == [("b", "unreachable")]
    assert "connection refused" in report.message()


def test_not_checked_while_a_promotion_deploys(world):
    ship(world, 1)
    promo = world.approved(2)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)  # verifying: lock held
    with pytest.raises(DeploymentInProgress, match=promo.id):
        check(world)
    assert world.ledger.audit_events("drift:shop/prod") == []


def test_nothing_verified_and_nothing_running_is_no_drift(world):
    report = check(world)
    assert not report.drifted and "nothing was verified" in report.message()


def test_the_releases_board_shows_the_drift_until_a_verified_deployment_supersedes_it(world, clock):
    from stella_operators.api.views import board

    ship(world, 1)
    clock.now += timedelta(minutes=1)
    check(world)
    cell = board(world.estate, world.ledger)["deployed"]["shop"]["prod"]
    assert cell["drift"]["status"] == "ok" and not cell["degraded"]
    world.hosts["b"].workloads[0].digest = digest(66)
    clock.now += timedelta(minutes=1)
    check(world)
    cell = board(world.estate, world.ledger)["deployed"]["shop"]["prod"]
    assert cell["degraded"] and cell["drift"]["status"] == "drift"
    assert any(p.startswith("drift found") and f"b: web: expected {digest(1)}, running {digest(66)}" in p
               for p in cell["problems"])
    clock.now += timedelta(minutes=1)
    ship(world, 2)
    cell = board(world.estate, world.ledger)["deployed"]["shop"]["prod"]
    assert cell["drift"]["superseded"] and not any(p.startswith("drift") for p in cell["problems"])
