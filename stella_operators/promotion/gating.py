"""Deciding a promotion: every gate, in order, recorded with its inputs; then approvals or not.

Any `fail` rejects the promotion whatever approvals say. A `pending` verdict (a policy that wants
a human) turns into a required approval. A freeze override adds one extra required approval and
is evidence of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stella_operators.estate.models import Estate
from stella_operators.evidence.recorder import seal_release_evidence
from stella_operators.gates.contract import GateVerdict, PromotionContext, Verdict, evaluate_gate
from stella_operators.gates.registry import build_gate, gate_types
from stella_operators.gates.upstream import UpstreamGate
from stella_operators.ledger.decisions import GatesAlreadyDecided, Settlement
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stella_operators.evidence.keys import SigningKey
    from stella_operators.gates.contract import Gate
    from stella_operators.ledger.protocols import GateBook, GatingLedger
    from stella_operators.promotion.model import Promotion


class PromotionBlocked(RuntimeError):
    """A gate failed: the promotion is rejected; the message is the "why blocked?" explanation."""


class GatesNotEvaluated(RuntimeError):
    """The promotion left `evaluating` without a gate decision (e.g. cancelled): nothing to return."""


@dataclass(frozen=True)
class GateOutcome:
    verdict: str                    # pass | fail
    verdicts: tuple[GateVerdict, ...]
    approvals_required: int
    recorded: bool = False          # True: the decision taken earlier, returned by a re-run


def build_gates(estate: Estate, environment: str) -> list[Gate]:
    specs = estate.environment(environment).gates
    types = gate_types({spec.get("type") for spec in specs})
    return [UpstreamGate()] + [build_gate(spec, types=types) for spec in specs]


def evaluate_promotion(estate: Estate, ledger: GatingLedger, key: SigningKey, promotion_id: str, *,
                       labels: dict[str, str] | None = None, now: datetime | None = None,
                       registry: Callable[[str], tuple[Any, str]] | None = None) -> GateOutcome:
    """Evaluate every gate of the promotion's environment; record verdicts, decision and evidence.

    Gates are evaluated once, while the promotion is `evaluating`; verdicts, decision, the signed
    `gate_decision` (and `override`) records and the next status are written in one transaction.
    A re-run (a cleared or retried gates task) gets the recorded outcome back and changes nothing:
    the same PromotionBlocked for a refused promotion, the recorded approval count otherwise.
    """
    now = now or datetime.now(UTC)
    promo = ledger.get_promotion(promotion_id)
    if promo.status != S.EVALUATING:
        return recorded_outcome(ledger, promo)
    release = ledger.get_release(promo.release_id)
    env = estate.environment(promo.environment)
    upstream = {u: ledger.was_deployed(promo.app, u, release.id) for u in estate.upstream(env.name)}
    verdicts: list[GateVerdict] = []
    recorded: list[tuple[GateVerdict, dict[str, Any]]] = []
    for gate in build_gates(estate, env.name):
        ctx = PromotionContext(app=promo.app, environment=env.name, release=release, promotion_id=promotion_id,
                               requested_by=promo.requested_by, now=now,
                               previous_release=ledger.deployed_release(promo.app, env.name),
                               earlier_verdicts=tuple(verdicts), labels=dict(labels or {}),
                               upstream_verified=upstream, registry=registry)
        verdict, inputs = evaluate_gate(gate, ctx)
        verdicts.append(verdict)
        recorded.append((verdict, inputs))

    failed = [v for v in verdicts if v.verdict == Verdict.FAIL]
    pending = [v for v in verdicts if v.verdict == Verdict.PENDING]
    overridden = [v for v in verdicts if "freeze.overridden" in v.reasons]
    required = env.approvals.required if env.approvals else 0
    if pending:
        required = max(required, 1)
    required += len(overridden)
    decision = {
        "verdict": "fail" if failed else "pass",
        "gates": [{"type": v.gate_type, "name": v.gate_name, "verdict": str(v.verdict), "reasons": list(v.reasons),
                   "message": v.message, "remedy": v.remedy, "inputs_hash": v.inputs_hash} for v in verdicts],
        "approvals_required": 0 if failed else required,
        "evaluated_at": now.isoformat(),
    }
    sealed = [seal_release_evidence(key, "gate_decision", release, {
        "environment": env.name, "promotion_id": promotion_id, "requested_by": promo.requested_by,
        "reason": promo.reason, "decision": decision}, now=now)]
    sealed += [seal_release_evidence(key, "override", release, {
        "environment": env.name, "promotion_id": promotion_id, "gate": v.gate_name,
        "override_by": v.details.get("override_by"), "reason": v.details.get("reason"),
        "windows": v.details.get("windows"), "extra_approval_required": True}, now=now) for v in overridden]
    if failed:
        settle = Settlement(S.REJECTED, "stella", {"failed_gates": [v.gate_name for v in failed]})
    elif required:
        settle = Settlement(S.AWAITING_APPROVAL, "stella", {"approvals_required": required})
    else:
        settle = Settlement(S.APPROVED, "stella")
    ledger.register_key(key.key_id, key.public_pem())
    try:
        ledger.record_gate_decision(promotion_id, recorded, decision, sealed, settle)
    except GatesAlreadyDecided:  # another attempt of this task decided first: its decision stands
        return recorded_outcome(ledger, ledger.get_promotion(promotion_id))
    if failed:
        raise PromotionBlocked(explain_verdicts(promotion_id, verdicts))
    return GateOutcome("pass", tuple(verdicts), required)


def recorded_outcome(ledger: GateBook, promo: Promotion) -> GateOutcome:
    """The gate decision on record for a promotion past `evaluating` (raises as the first run did)."""
    decision = promo.decision or {}
    if "verdict" not in decision:
        raise GatesNotEvaluated(
            f"promotion {promo.id} is {promo.status} and its gates were never evaluated; gates are evaluated "
            "once, while a promotion is evaluating. Request a new promotion to evaluate them.")
    # The decision's own verdicts: the first ones recorded (later checks, e.g. at deploy, may add more).
    verdicts = tuple(v for v, _ in ledger.gate_verdicts_for(promo.id))[:len(decision.get("gates", []))]
    if decision["verdict"] == "fail":
        raise PromotionBlocked(f"(decided {decision.get('evaluated_at')}; gates are evaluated once)\n"
                               + explain_verdicts(promo.id, verdicts))
    return GateOutcome("pass", verdicts, int(decision.get("approvals_required", 0)), recorded=True)


def explain_verdicts(promotion_id: str, verdicts: Iterable[GateVerdict]) -> str:
    """The "why blocked?" text for a rejected promotion (same wording as `stella why`)."""
    from stella_operators.promotion.why import blocked_lines, not_passed

    return "\n".join([f"promotion {promotion_id} is blocked:", *blocked_lines(not_passed(verdicts))])
