"""The freeze gate again, right before deploying: a promotion that passed its gates before a
window began and then waited for approvals must not deploy inside the window.

Same gate code (gates/freeze/), evaluated at deploy time and recorded as a verdict of its own
(details `checked_at: deploy`). An override accepted when the gates ran (and paid for with its
extra approval) is presented again, so it still counts. Each freeze gate's `at_deploy` says what
a freeze then means: `wait` until it ends, or `fail` the promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from stella_operators.estate.models import Estate
from stella_operators.gates.contract import (
    GateVerdict,
    PromotionContext,
    Verdict,
    evaluate_gate,
)
from stella_operators.gates.freeze.gate import OVERRIDE_BY_LABEL, OVERRIDE_REASON_LABEL, FreezeGate
from stella_operators.gates.registry import build_gate, gate_types

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import GateBook, GatingLedger


@dataclass(frozen=True)
class FreezeAtDeploy:
    """A freeze window is active at deploy time."""

    verdicts: tuple[GateVerdict, ...]
    action: str                      # "wait" | "fail" (fail wins when gates disagree)
    opens_at: datetime | None        # when every active window ends (None: not within a year)

    @property
    def message(self) -> str:
        return "; ".join(v.message for v in self.verdicts)


def _override_labels(ledger: GateBook, promotion_id: str) -> dict[str, str]:
    for verdict, inputs in ledger.gate_verdicts_for(promotion_id):
        override = inputs.get("override") if verdict.gate_type == "freeze" else None
        if override and "freeze.overridden" in verdict.reasons:
            return {OVERRIDE_BY_LABEL: override.get("by") or "", OVERRIDE_REASON_LABEL: override.get("reason") or ""}
    return {}


def check_freeze_at_deploy(estate: Estate, ledger: GatingLedger, promotion_id: str, *,
                           now: datetime | None = None) -> FreezeAtDeploy | None:
    """Evaluate and record every freeze gate of the environment now; None if none blocks."""
    specs = [s for s in estate.environment(ledger.get_promotion(promotion_id).environment).gates
             if s.get("type") == "freeze"]
    if not specs:
        return None
    now = now or datetime.now(UTC)
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    types = gate_types({"freeze"})
    labels = _override_labels(ledger, promotion_id)
    recorded, blocking, actions = [], [], []
    for spec in specs:
        gate = build_gate(spec, types=types)
        ctx = PromotionContext(app=promo.app, environment=promo.environment, release=release,
                               promotion_id=promotion_id, requested_by=promo.requested_by, now=now,
                               labels=dict(labels))
        verdict, inputs = evaluate_gate(gate, ctx)
        verdict = verdict.model_copy(update={"details": {**verdict.details, "checked_at": "deploy"}})
        recorded.append((verdict, inputs))
        if verdict.verdict != Verdict.PASS:
            blocking.append(verdict)
            # build_gate() of type "freeze" (the only type asked for above) is a FreezeGate.
            actions.append(cast(FreezeGate, gate).config.at_deploy)
    ledger.record_gate_verdicts(promotion_id, recorded, actor="stella")
    if not blocking:
        return None
    ends = [e for v in blocking if (e := v.details.get("opens_at")) is not None]
    opens_at = max(datetime.fromisoformat(e) for e in ends) if len(ends) == len(blocking) else None
    return FreezeAtDeploy(tuple(blocking), "fail" if "fail" in actions else "wait", opens_at)
