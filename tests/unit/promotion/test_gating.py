"""Gate decisions are taken once, from `evaluating`, against a real SQLite ledger: repeated or
racing evaluations return the recorded outcome and never sign a second `gate_decision`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from stella_operators.estate.loader import parse_estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.gating import GatesNotEvaluated, PromotionBlocked, evaluate_promotion
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release

ESTATE = parse_estate("""
registries: [{host: registry.local, scheme: http}]
approver_groups: [{name: rm, users: [bob]}]
apps:
  - name: shop
    components: [{name: web, repository: registry.local/shop/web}]
environments:
  - name: prod
    requires: []
    approvals: {required: 1, groups: [rm]}
    gates:
      - type: policy
        rules: [{id: no-snapshots, deny_if: 'release.name.contains("snapshot")', message: "no snapshots"}]
    targets: [{name: shop-1, type: docker, connection: unused}]
""")


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        yield ledger


def evaluating(ledger, name: str, run: str) -> str:
    release = ledger.find_release("shop", name) or ledger.add_release(Release.seal(
        id=f"rel-{name}", app="shop", name=name, created_at=datetime.now(UTC), created_by="ci-bot",
        source={}, components=[ComponentDigest(name="web", repository="registry.local/shop/web",
                                               digest="sha256:" + "1" * 64, tag="1.0.0")]))
    promo = ledger.create_promotion("shop", "prod", release.id, "alice", "ship", "promote_shop", run)
    ledger.transition(promo.id, S.EVALUATING, actor="alice")
    return promo.id


def decisions(ledger, pid):
    return [e for e in ledger.evidence_for(promotion_id=pid) if e.type == "gate_decision"]


def test_a_second_evaluation_returns_the_recorded_outcome(ledger):
    key, pid = SigningKey.generate(), evaluating(ledger, "shop-1.0.0", "run-1")
    first = evaluate_promotion(ESTATE, ledger, key, pid)
    assert (first.approvals_required, first.recorded) == (1, False)
    again = evaluate_promotion(ESTATE, ledger, key, pid)
    assert (again.approvals_required, again.recorded) == (1, True)
    assert [v.inputs_hash for v in again.verdicts] == [v.inputs_hash for v in first.verdicts]
    assert len(decisions(ledger, pid)) == 1 and ledger.get_promotion(pid).status == S.AWAITING_APPROVAL


def test_a_refused_promotion_is_refused_again_from_the_record(ledger):
    key, pid = SigningKey.generate(), evaluating(ledger, "shop-snapshot", "run-2")
    with pytest.raises(PromotionBlocked, match="no-snapshots"):
        evaluate_promotion(ESTATE, ledger, key, pid)
    with pytest.raises(PromotionBlocked, match="gates are evaluated once"):
        evaluate_promotion(ESTATE, ledger, key, pid)
    assert len(decisions(ledger, pid)) == 1 and len(ledger.gate_verdicts_for(pid)) == 2


def test_racing_evaluations_record_one_decision(ledger):
    key, pid = SigningKey.generate(), evaluating(ledger, "shop-1.0.0", "run-3")
    ledger.register_key(key.key_id, key.public_pem())
    barrier, outcomes = threading.Barrier(4), []

    def run():
        barrier.wait()
        outcomes.append(evaluate_promotion(ESTATE, ledger, key, pid))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.recorded for o in outcomes) == [False, True, True, True]
    assert len(decisions(ledger, pid)) == 1 and len(ledger.gate_verdicts_for(pid)) == 2


def test_a_promotion_that_left_evaluating_undecided_is_refused_with_a_reason(ledger):
    key, pid = SigningKey.generate(), evaluating(ledger, "shop-1.0.0", "run-4")
    ledger.transition(pid, S.CANCELLED, actor="alice")
    with pytest.raises(GatesNotEvaluated, match="is cancelled and its gates were never evaluated"):
        evaluate_promotion(ESTATE, ledger, key, pid)
    assert decisions(ledger, pid) == [] and ledger.gate_verdicts_for(pid) == []
