"""Deploy and verify as services (SQLite ledger, in-memory hosts): no host is ever left between
releases, a dead worker's deployment is rolled back, and locks are per (app, environment)."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

from stella_operators.ledger.records import DeploymentStatus
from stella_operators.promotion.service import (
    DeploymentFailed,
    DeploymentInterrupted,
    EnvironmentLocked,
    deploy_promotion,
    fail_for_lock,
    verify_promotion,
)
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import World, digest


def deploy(world, promo, **kw):
    return deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets, **kw)


def verify(world, promo):
    return verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)


def ship(world, n: int, app: str = "shop"):
    promo = world.approved(n, app)
    deploy(world, promo)
    verify(world, promo)
    return promo


def status(world, promo) -> str:
    return str(world.ledger.get_promotion(promo.id).status)


def test_deploy_then_verify_keeps_the_old_workload_until_verified(world):
    ship(world, 1)
    promo = world.approved(2)
    deploy(world, promo)
    assert status(world, promo) == "verifying"
    # switched, the old one kept (stopped) for a rollback; the lock still held until verified
    assert world.running() == {"a": {"web": digest(2)}, "b": {"web": digest(2)}}
    assert len(world.hosts["a"].workloads) == 2
    assert world.ledger.deploy_lock("shop", "prod").promotion_id == promo.id
    verify(world, promo)
    assert status(world, promo) == "deployed"
    assert len(world.hosts["a"].workloads) == 1 and world.hosts["a"].calls[-1] == "finalize"
    assert world.ledger.deploy_lock("shop", "prod") is None
    assert world.ledger.deployments_for(promo.id)[-1].status == DeploymentStatus.SUCCEEDED


def test_commit_failing_on_the_second_host_rolls_the_first_back(world):
    ship(world, 1)
    world.hosts["b"].commit_fails = True
    promo = world.approved(2)
    with pytest.raises(DeploymentFailed, match="rolled_back.*b: commit failed"):
        deploy(world, promo)
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    assert status(world, promo) == "rolled_back"
    [rollback] = [e for e in world.ledger.evidence_for(promotion_id=promo.id) if str(e.type) == "rollback"]
    # the record names the state it returned to, by name as well as by id and digests
    assert rollback.content["previous"] == {"release_id": "rel-shop-1", "release_name": "shop-1.0.0",
                                            "digests": {"web": digest(1)}}
    assert world.ledger.deploy_lock("shop", "prod") is None


def test_a_host_that_cannot_be_restored_is_named(world):
    ship(world, 1)
    world.hosts["b"].commit_fails = True
    world.hosts["a"].restore_fails = True
    promo = world.approved(2)
    with pytest.raises(DeploymentFailed, match="could not restore a"):
        deploy(world, promo)
    assert status(world, promo) == "failed"
    ended = world.ledger.get_promotion(promo.id)
    assert ended.status == S.FAILED
    last = [e for e in world.ledger.audit_events(f"promotion:{promo.id}") if e.action == "promotion.transition"][-1]
    assert last.detail["detail"]["not_restored"] == ["a"]


def test_verification_failure_rolls_every_host_back(world):
    ship(world, 1)
    promo = world.approved(2)
    deploy(world, promo)
    world.hosts["b"].workloads[-1].digest = digest(9)  # someone changed host b behind our back
    with pytest.raises(DeploymentFailed, match="verification failed.*b runs"):
        verify(world, promo)
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    assert status(world, promo) == "rolled_back"
    rollback = [e for e in world.ledger.evidence_for(promotion_id=promo.id) if str(e.type) == "rollback"]
    assert len(rollback) == 1 and rollback[0].content["reason"].startswith("verification failed")
    assert world.ledger.deploy_lock("shop", "prod") is None


def test_a_retry_after_the_worker_died_rolls_back_and_a_new_promotion_succeeds(world, clock):
    ship(world, 1)
    promo = world.approved(2)
    # the dead worker's state, built step by step as deploy_promotion leaves it midway
    led = world.ledger
    assert led.acquire_deploy_lock("shop", "prod", promo.id, "promote/run-2/try-1").acquired
    led.transition(promo.id, S.DEPLOYING, actor="stella")
    dep = led.start_deployment(promo.id, "all_at_once", previous={"a": {"web": digest(1)}, "b": {"web": digest(1)}})
    from tests.unit.promotion.fakes import Workload

    for name in ("a", "b"):
        world.hosts[name].workloads.append(Workload("shop", "web", digest(2), dep, True))
    world.hosts["a"].workloads[0].running = False  # host a had switched
    assert world.running() == {"a": {"web": digest(2)}, "b": {"web": digest(2)}}

    clock.now += timedelta(seconds=30)
    with pytest.raises(DeploymentFailed, match="interrupted.*rolled back"):
        deploy(world, promo, holder="promote/run-2/try-2")  # Airflow's retry of the deploy task
    assert status(world, promo) == "rolled_back"
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    assert led.deploy_lock("shop", "prod") is None
    assert led.deployments_for(promo.id)[-1].status == DeploymentStatus.ROLLED_BACK
    assert "rollback" in world.evidence_types(promo.id)
    with pytest.raises(DeploymentFailed, match="rolled_back"):  # a further retry changes nothing
        deploy(world, promo)

    again = ship(world, 3)
    assert status(world, again) == "deployed"
    assert world.running() == {"a": {"web": digest(3)}, "b": {"web": digest(3)}}


def test_a_stale_lock_is_taken_over_and_its_deployment_rolled_back(world, clock):
    ship(world, 1)
    dead = world.approved(2)
    led = world.ledger
    assert led.acquire_deploy_lock("shop", "prod", dead.id, "run-dead", lease_s=60).acquired
    led.transition(dead.id, S.DEPLOYING, actor="stella")
    dep = led.start_deployment(dead.id, "all_at_once", previous={"a": {"web": digest(1)}, "b": {"web": digest(1)}})
    from tests.unit.promotion.fakes import Workload

    world.hosts["a"].workloads.append(Workload("shop", "web", digest(2), dep, True))
    nxt = world.approved(3)
    with pytest.raises(EnvironmentLocked, match="app shop in environment prod is locked by promotion"):
        deploy(world, nxt)  # the lease still runs: the holder may be alive
    clock.now += timedelta(seconds=61)  # no heartbeat for longer than the lease
    deploy(world, nxt)
    assert status(world, dead) == "rolled_back"
    assert status(world, nxt) == "verifying"
    takeover = [e for e in led.audit_events("lock:prod/shop") if e.action == "lock.takeover"]
    assert takeover and takeover[0].detail["reason"] == "lease_expired"
    verify(world, nxt)
    assert world.running() == {"a": {"web": digest(3)}, "b": {"web": digest(3)}}


def test_an_interrupted_deployment_rolls_back_and_re_raises(world):
    """Airflow interrupts the task's main thread: execution_timeout by SIGALRM, a kill by SIGTERM
    (on_kill raises DeploymentInterrupted); here a real SIGALRM lands while host b prepares."""
    ship(world, 1)
    world.hosts["b"].on_prepare = lambda plan: time.sleep(3)

    def alarm(signum, frame):
        raise DeploymentInterrupted("the deploy task was killed")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    promo = world.approved(2)
    try:
        with pytest.raises(DeploymentInterrupted):
            deploy(world, promo)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert status(world, promo) == "rolled_back"
    assert world.ledger.deploy_lock("shop", "prod") is None
    assert "interrupted" in world.ledger.evidence_for(promotion_id=promo.id)[-1].content["reason"]
    # the prepare that was in flight ended before the rollback, which removed what it started
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    assert all(len(h.workloads) == 1 for h in world.hosts.values())


def test_lock_is_per_app_unless_the_environment_asks_for_one(world, tmp_path, clock):
    ship(world, 1)
    shop = world.approved(2)
    deploy(world, shop)  # holds shop's lock until verified
    cart = world.approved(5, app="cart")
    deploy(world, cart)  # another app in the same environment is not blocked
    assert status(world, cart) == "verifying"

    wide = World(tmp_path / "wide", clock=clock, lock_scope="environment") if (tmp_path / "wide").mkdir() is None \
        else None
    shop = wide.approved(2)
    deploy(wide, shop)
    cart = wide.approved(5, app="cart")
    with pytest.raises(EnvironmentLocked, match=f"environment prod is locked by promotion {shop.id}"):
        deploy(wide, cart)
    assert status(wide, cart) == "approved"
    wide.ledger.close()


def test_lock_refusal_and_time_out_leave_evidence_and_audit(world):
    holder = world.approved(1)
    for reason in ("lock.held", "lock.timeout"):
        promo = world.approved(2)
        fail_for_lock(world.ledger, world.key, promo.id, reason=reason, holder=holder.id)
        assert status(world, promo) == "failed"
        [ev] = world.ledger.evidence_for(promotion_id=promo.id)
        assert ev.content["reason"] == reason and ev.content["lock_holder"] == holder.id
        actions = [e.action for e in world.ledger.audit_events(f"promotion:{promo.id}")]
        assert ("lock.refused" if reason == "lock.held" else "lock.timeout") in actions


def test_a_host_that_cannot_be_read_names_itself_and_its_address_and_nothing_starts(world):
    def unreachable(app):
        raise ConnectionError("connection refused")

    world.hosts["b"].facts = unreachable
    promo = world.approved(1)
    with pytest.raises(DeploymentFailed, match=r"could not start: b \(tcp://b.lab:2375\): connection refused"):
        deploy(world, promo)
    assert status(world, promo) == "failed"
    assert world.hosts["a"].calls == [] and world.ledger.deploy_lock("shop", "prod") is None
