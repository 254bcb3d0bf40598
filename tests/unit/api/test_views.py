"""What the pages show, read from a real SQLite ledger: approval cards, "why?" sentences, the board."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stella_operators.api.views import approval_card, board, why_sentences
from stella_operators.approvals.policy import Approver
from stella_operators.estate.models import Estate
from stella_operators.gates.contract import GateVerdict
from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest
from stella_operators.release.service import cut_release

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
ESTATE = Estate.model_validate({
    "approver_groups": [{"name": "release-managers", "users": ["admin", "bob"]}],
    "apps": [{"name": "shop", "components": [{"name": "web", "repository": "reg.local/demo/web"}]}],
    "environments": [{"name": "dev", "approvals": {"required": 1, "groups": ["release-managers"]},
                      "targets": [{"name": "dev-1", "type": "docker", "connection": "c1"},
                                  {"name": "dev-2", "type": "docker", "connection": "c2"}]}],
})


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as led:
        yield led


def release(ledger, name: str, tag: str, digest: str):
    rel = cut_release(ESTATE, app="shop", name=name, refs={"web": tag}, created_by="ci",
                      resolve=lambda comp, repo, ref: ComponentDigest(name=comp.name, repository=repo,
                                                                      digest=digest, tag=ref))
    return ledger.add_release(rel)


def waiting(ledger, rel, requested_by: str = "admin"):
    run_id = f"{rel.name}-{len(ledger.recent_promotions(100))}"
    p = ledger.create_promotion("shop", "dev", rel.id, requested_by, "first deploy", dag_id="d", run_id=run_id)
    ledger.transition(p.id, S.EVALUATING, actor=requested_by)
    ledger.record_gate_verdicts(p.id, [(GateVerdict(
        gate_type="upstream", gate_name="upstream", verdict="pass", reasons=(), message="no upstream environment",
        inputs_hash="sha256:" + "0" * 64, evaluated_at=datetime.now(UTC)), {})])
    return ledger.transition(p.id, S.AWAITING_APPROVAL, actor="stella")


def deployed(ledger, rel, results: dict[str, tuple[str, str | None]], final=S.DEPLOYED, error=None):
    """A promotion of `rel` that went through a deployment with these per-target results."""
    p = waiting(ledger, rel, "ci")
    for st in (S.APPROVED, S.DEPLOYING):
        ledger.transition(p.id, st, actor="stella")
    dep = ledger.start_deployment(p.id, "all_at_once", previous={})
    for target, (status, digest) in results.items():
        ledger.add_target_result(dep, target, status, digests={"web": digest} if digest else {})
    ledger.finish_deployment(dep, "succeeded" if final == S.DEPLOYED else "failed", error=error)
    if final == S.DEPLOYED:
        ledger.transition(p.id, S.VERIFYING, actor="stella")
    return ledger.transition(p.id, final, actor="stella", detail={"error": error} if error else None)


def test_card_shows_current_and_new_per_component_and_who_may_decide(ledger):
    old, new = release(ledger, "shop-1", "1.0.0", D1), release(ledger, "shop-2", "2.0.0", D2)
    deployed(ledger, old, {"dev-1": ("deployed", D1), "dev-2": ("deployed", D1)})
    promo = waiting(ledger, new)

    bob = approval_card(ESTATE, ledger, promo, Approver("bob"))
    [comp] = bob["components"]
    assert comp["tag"] == "2.0.0" and comp["digest"] == D2 and comp["changed"]
    assert comp["current"] == {"tag": "1.0.0", "digest": D1, "release": "shop-1"}
    assert bob["gates"][0]["sentence"] == "Gate upstream passed: no upstream environment."
    assert bob["requested_by"] == "admin" and bob["reason"] == "first deploy"
    assert bob["run_link"] == "/dags/d/runs/shop-2-1"
    assert bob["you"] == {"user": "bob", "can_decide": True, "why_not": None}

    admin = approval_card(ESTATE, ledger, promo, Approver("admin"))["you"]
    assert not admin["can_decide"]
    assert admin["why_not"] == "You requested this promotion, so you cannot approve it (separation of duties)."
    carol = approval_card(ESTATE, ledger, promo, Approver("carol"))["you"]
    assert carol["why_not"].startswith("You are not in an approver group of this environment (release-managers)")


def test_why_for_rejected_and_failed_promotions_are_sentences(ledger):
    rel = release(ledger, "shop-1", "1.0.0", D1)
    promo = waiting(ledger, rel)
    ledger.record_approval(promo.id, "bob", "reject", "not before the sale", rel.content_hash, counted=True)
    ledger.transition(promo.id, S.REJECTED, actor="bob", detail={"rejected_by": "bob"})
    assert why_sentences(ESTATE, ledger, ledger.get_promotion(promo.id)) == [
        "bob rejected it, so it ended without deploying.", "bob wrote: \u201cnot before the sale\u201d"]

    failed = deployed(ledger, rel, {"dev-1": ("failed", None)}, final=S.FAILED,
                      error="could not start: dev-1 (tcp://10.0.0.1:2375): connection refused")
    [sentence] = why_sentences(ESTATE, ledger, failed)
    assert sentence == "The deployment failed: could not start: dev-1 (tcp://10.0.0.1:2375): connection refused"
    # an error that names no host gets the environment's targets added
    vague = deployed(ledger, rel, {}, final=S.FAILED, error="Failed to establish connection to any given Docker hosts.")
    assert why_sentences(ESTATE, ledger, vague) == [
        ("The deployment failed: Failed to establish connection to any given Docker hosts "
         "(on one of dev-1, dev-2, in dev).")]


def test_board_marks_an_environment_degraded_when_its_hosts_disagree(ledger):
    old, new = release(ledger, "shop-1", "1.0.0", D1), release(ledger, "shop-2", "2.0.0", D2)
    deployed(ledger, old, {"dev-1": ("deployed", D1), "dev-2": ("deployed", D1)})
    healthy = board(ESTATE, ledger)["deployed"]["shop"]["dev"]
    assert healthy["name"] == "shop-1" and not healthy["degraded"]
    assert [(t["target"], t["release"], t["result"]) for t in healthy["targets"]] == [
        ("dev-1", "shop-1", "deployed"), ("dev-2", "shop-1", "deployed")]

    # dev-2 failed mid-deploy and its rollback was incomplete: it runs nothing now
    deployed(ledger, new, {"dev-1": ("rolled_back", D1), "dev-2": ("failed", None)}, final=S.ROLLED_BACK,
             error="dev-2: health check failed; rollback of dev-2 failed")
    cell = board(ESTATE, ledger)["deployed"]["shop"]["dev"]
    assert cell["name"] == "shop-1" and cell["degraded"]
    assert cell["problems"] == ["dev-2 runs nothing (last result: failed)"]
    assert [(t["target"], t["release"], t["healthy"]) for t in cell["targets"]] == [
        ("dev-1", "shop-1", True), ("dev-2", None, False)]
    timeline = board(ESTATE, ledger)["timeline"]
    assert timeline[0]["status"] == "rolled_back" and timeline[1]["approved_by"] == []


def test_a_host_whose_step_failed_but_was_restored_is_not_shown_unhealthy(ledger):
    """The health check failed on dev-1, the deployment rolled back, and both hosts run the verified
    release again: the board says so instead of painting dev-1 red."""
    old, new = release(ledger, "shop-1", "1.0.0", D1), release(ledger, "shop-2", "2.0.0-broken", D2)
    deployed(ledger, old, {"dev-1": ("deployed", D1), "dev-2": ("deployed", D1)})
    deployed(ledger, new, {"dev-1": ("failed", D1), "dev-2": ("rolled_back", D1)}, final=S.ROLLED_BACK,
             error="dev-1: health check failed")
    cell = board(ESTATE, ledger)["deployed"]["shop"]["dev"]
    assert not cell["degraded"], cell["problems"]
    assert [(t["target"], t["release"], t["result"], t["healthy"], t["restored"]) for t in cell["targets"]] == [
        ("dev-1", "shop-1", "failed", True, True), ("dev-2", "shop-1", "rolled_back", True, True)]


def test_evidence_view_verifies_only_against_the_trust_store(ledger):
    """The readable evidence page says "verifies" only for a key the operator trusts: a key that merely
    registered itself in the ledger (anyone who can run a task can do that) reads as untrusted."""
    from stella_operators.api.views import evidence_view
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.evidence.recorder import record_evidence
    from stella_operators.evidence.trust import TrustStoreError, load_trust_store

    trusted, intruder = SigningKey.generate(), SigningKey.generate()
    rel = release(ledger, "shop-1", "1.0", D1)
    good = record_evidence(ledger, trusted, "release", rel, {"note": "by the real key"})
    forged = record_evidence(ledger, intruder, "release", rel, {"note": "by a self-registered key"})
    store = load_trust_store(pems=[trusted.public_pem().decode()], source="test")

    assert evidence_view(ledger, good.id, store)["verified"] is True
    view = evidence_view(ledger, forged.id, store)
    assert view["verified"] is False and intruder.key_id in view["verify_reason"]
    unconfigured = evidence_view(ledger, good.id, TrustStoreError("no trust store configured"))
    assert unconfigured["verified"] is False and "no trust store" in unconfigured["verify_reason"]
