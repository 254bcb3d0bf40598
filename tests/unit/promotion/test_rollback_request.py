"""A requested rollback (SQLite ledger, in-memory hosts): which release it returns to, what it
refuses, what emergency mode skips, and the evidence it always leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stella_operators.evidence.envelope import verify_evidence
from stella_operators.evidence.keys import TrustedKeys
from stella_operators.promotion.rollback_request import (
    RollbackRefused,
    RollbackRequest,
    approved_in_emergency,
    choose_release,
    record_rollback_outcome,
    request_rollback,
)
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from tests.unit.promotion.fakes import World, digest, estate


def trusted(key) -> TrustedKeys:
    keys = TrustedKeys()
    keys.add(key.public_pem())
    return keys


def ship(world, clock, n):
    clock.now += timedelta(minutes=1)
    promo = world.approved(n)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    return promo


def ask(world, release="", *, reason="bad release", emergency=False, run="rb-1", by="alice"):
    return request_rollback(world.estate, world.ledger, world.key, RollbackRequest(
        app="shop", environment="prod", release=release, requested_by=by, reason=reason, emergency=emergency,
        dag_id="stella_rollback__shop__prod", run_id=run))


def test_default_is_the_last_release_verified_before_the_current_one(world, clock):
    for n in (1, 2, 3):
        ship(world, clock, n)
    to, current = choose_release(world.ledger, "shop", "prod", "")
    assert (to.name, current.name) == ("shop-2.0.0", "shop-3.0.0")


def test_after_a_rollback_the_default_goes_further_back_not_forward_again(world, clock):
    for n in (1, 2, 3):
        ship(world, clock, n)
    clock.now += timedelta(minutes=1)
    promo = world.approved(1)   # back to 1 by hand: 1 is current, first verified before 2 and 3
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    with pytest.raises(RollbackRefused, match=r"no release was verified here before it.*shop-3.0.0 \(rel-shop-3\), "
                                              r"shop-2.0.0"):
        choose_release(world.ledger, "shop", "prod", "")


def test_a_named_release_must_have_been_verified_here_and_the_error_lists_the_choices(world, clock):
    ship(world, clock, 1)
    ship(world, clock, 2)
    world.release(9)   # sealed, never verified in prod
    with pytest.raises(RollbackRefused) as exc:
        choose_release(world.ledger, "shop", "prod", "shop-9.0.0")
    assert "never verified for shop in prod" in str(exc.value) and "shop-1.0.0 (rel-shop-1)" in str(exc.value)
    with pytest.raises(RollbackRefused, match="already runs shop-2.0.0"):
        choose_release(world.ledger, "shop", "prod", "shop-2.0.0")
    assert choose_release(world.ledger, "shop", "prod", "rel-shop-1")[0].name == "shop-1.0.0"


def test_nothing_verified_means_nothing_to_roll_back(world):
    with pytest.raises(RollbackRefused, match="nothing was ever verified for shop in prod"):
        ask(world)


@pytest.mark.parametrize("reason", ["", "   \t"])
def test_a_blank_reason_is_refused_and_nothing_is_recorded(world, clock, reason):
    ship(world, clock, 1)
    ship(world, clock, 2)
    with pytest.raises(RollbackRefused, match="give a reason"):
        ask(world, reason=reason)
    assert world.ledger.find_promotion_by_run("stella_rollback__shop__prod", "rb-1") is None


def test_a_rollback_goes_through_gates_unless_emergency(world, clock):
    ship(world, clock, 1)
    ship(world, clock, 2)
    promo = ask(world)
    assert str(promo.status) == "evaluating" and not approved_in_emergency(world.ledger, promo.id)
    assert promo.reason == "rollback from shop-2.0.0: bad release"
    assert world.evidence_types(promo.id) == []


def test_emergency_skips_gates_and_approvals_with_signed_override_evidence(world, clock):
    ship(world, clock, 1)
    ship(world, clock, 2)
    promo = ask(world, emergency=True, reason="prod is down")
    assert str(promo.status) == "approved" and approved_in_emergency(world.ledger, promo.id)
    [override] = world.ledger.evidence_for(promotion_id=promo.id)
    assert override.type == "override" and verify_evidence(override, trusted(world.key)).ok
    assert override.content["skipped"] == ["gates", "approvals"]
    assert (override.content["requested_by"], override.content["reason"]) == ("alice", "prod is down")
    assert ask(world, emergency=True, reason="prod is down").id == promo.id   # a retried task: same promotion


def test_the_rollback_evidence_names_the_state_left_and_the_state_returned_to(world, clock):
    ship(world, clock, 1)
    ship(world, clock, 2)
    promo = ask(world, emergency=True, reason="prod is down")
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    returned, content = record_rollback_outcome(world.ledger, world.key, promo.id)
    assert returned
    assert content["left"] == {"release_id": "rel-shop-2", "release_name": "shop-2.0.0",
                               "targets": {"a": {"web": digest(2)}, "b": {"web": digest(2)}}}
    assert content["returned_to"] == {"release_id": "rel-shop-1", "release_name": "shop-1.0.0",
                                      "targets": {"a": {"web": digest(1)}, "b": {"web": digest(1)}}}
    assert (content["requested_by"], content["reason"], content["emergency"]) == ("alice", "prod is down", True)
    assert world.ledger.deployed_release("shop", "prod").name == "shop-1.0.0"
    assert record_rollback_outcome(world.ledger, world.key, promo.id)[1] == content   # written once
    assert world.evidence_types(promo.id).count("rollback") == 1


def test_a_failed_rollback_still_leaves_evidence_and_the_state_it_kept(world, clock):
    ship(world, clock, 1)
    ship(world, clock, 2)
    promo = ask(world, emergency=True, reason="prod is down")
    world.hosts["b"].commit_fails = True
    with pytest.raises(DeploymentFailed):
        deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert world.running() == {"a": {"web": digest(2)}, "b": {"web": digest(2)}}
    returned, content = record_rollback_outcome(world.ledger, world.key, promo.id)
    assert not returned and content["status"] == "rolled_back" and content["returned_to"] is None
    assert "ended rolled_back" in content["error"]


def test_an_emergency_rollback_deploys_inside_a_freeze_window_a_normal_promotion_may_not(tmp_path):
    from tests.unit.promotion.conftest import Clock
    from tests.unit.promotion.test_freeze_at_deploy import freeze_gate

    clock = Clock()
    world = World(tmp_path, clock=clock)
    for n in (1, 2):   # shipped before the window
        ship(world, clock, n)
    gate, _now = freeze_gate()
    world.estate = estate(gates=[gate])   # now a freeze window is active
    promo = ask(world, emergency=True, reason="prod is down during the freeze")
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    assert str(world.ledger.get_promotion(promo.id).status) == "verifying"
    assert world.running() == {"a": {"web": digest(1)}, "b": {"web": digest(1)}}
    normal = world.approved(2)
    with pytest.raises(DeploymentFailed, match="freeze window is active at deploy time"):
        deploy_promotion(world.estate, world.ledger, world.key, normal.id, world.targets)
