""""Why blocked?": what stops a promotion, in the words of its recorded verdicts and approvals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stella_operators.promotion.overrides import change_sentence, manual_changes
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stella_operators.estate.models import Estate
    from stella_operators.gates.contract import GateVerdict
    from stella_operators.ledger.protocols import AuditLog, ReadLedger


def explain_promotion(estate: Estate, ledger: ReadLedger, promotion_id: str) -> dict[str, Any]:
    """Status, each gate that did not pass (reason codes, message, what would clear it) and the
    approval state; `text` is the same as lines for a terminal or a log."""
    from stella_operators.approvals.service import approval_state, effective_requirement

    promo = ledger.get_promotion(promotion_id)
    blocked = not_passed([v for v, _inputs in ledger.gate_verdicts_for(promotion_id)])
    out: dict[str, Any] = {"promotion_id": promotion_id, "status": str(promo.status), "blocked_by": blocked}
    lines = [f"promotion {promotion_id}: {promo.app} -> {promo.environment}, status {promo.status}"]
    lines += blocked_lines(blocked)
    if promo.status == S.AWAITING_APPROVAL:
        st = approval_state(estate, ledger, promotion_id)
        requirement, groups = effective_requirement(estate, promo)
        who = sorted({u for g in groups for u in g.users} | {f"role:{r}" for g in groups for r in g.roles})
        out["approvals"] = {"approvers": list(st.approvers), "needed": st.needed, "eligible": who}
        lines.append(f"  waiting for {st.needed} more approval(s) from {', '.join(who) or 'nobody'}"
                     + (f"; approved so far by {', '.join(st.approvers)}" if st.approvers else ""))
        if requirement.separation_of_duties:
            lines.append(f"    (separation of duties: {promo.requested_by} requested it and may not approve)")
    elif promo.status in (S.FAILED, S.ROLLED_BACK, S.REJECTED, S.CANCELLED) and not blocked:
        last = last_transition(ledger, promotion_id)
        if last:
            out["ended"] = last
            lines.append(f"  ended by {last['actor']}: {last['detail'] or 'no detail recorded'}")
    changes = manual_changes(ledger, promotion_id)
    if changes:
        out["manual_changes"] = changes
        lines += ["  MANUAL CHANGE: " + change_sentence(c, str(promo.status)) for c in changes]
    if len(lines) == 1:
        lines.append("  nothing blocks it")
    out["text"] = "\n".join(lines)
    return out


def last_transition(ledger: AuditLog, promotion_id: str) -> dict[str, Any] | None:
    """The latest status change of a promotion, from the audit log (who, to what, why)."""
    events = [e for e in ledger.audit_events(f"promotion:{promotion_id}") if e.action == "promotion.transition"]
    if not events:
        return None
    e = events[-1]
    return {"actor": e.actor, "to": e.detail.get("to"), "detail": e.detail.get("detail"), "at": e.at.isoformat()}


def not_passed(verdicts: Iterable[GateVerdict]) -> list[dict[str, Any]]:
    """The verdicts that did not pass, as plain data."""
    return [{"gate": v.gate_name, "type": v.gate_type, "verdict": str(v.verdict), "reasons": list(v.reasons),
             "message": v.message, "remedy": v.remedy} for v in verdicts if str(v.verdict) != "pass"]


def blocked_lines(blocked: list[dict[str, Any]]) -> list[str]:
    """Each blocking gate: reason codes, message, and what would clear it."""
    lines = []
    for b in blocked:
        lines.append(f"  gate {b['gate']} ({b['type']}) {b['verdict']}: {', '.join(b['reasons'])}")
        if b["message"]:
            lines.append(f"    {b['message']}")
        if b["remedy"]:
            lines.append(f"    to clear: {b['remedy']}")
    return lines
