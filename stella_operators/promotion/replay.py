"""Replay a promotion's recorded gate verdicts from their recorded inputs (deterministic replay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stella_operators.gates.contract import GateVerdict, replay_gate
from stella_operators.gates.upstream import UpstreamGate

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.ledger.protocols import ReadLedger


@dataclass(frozen=True)
class ReplayResult:
    gate_name: str
    recorded: GateVerdict
    replayed: GateVerdict

    @property
    def same(self) -> bool:
        r, p = self.recorded, self.replayed
        return (r.verdict, r.reasons, r.inputs_hash) == (p.verdict, p.reasons, p.inputs_hash)


def replay_promotion(estate: Estate, ledger: ReadLedger, promotion_id: str) -> list[ReplayResult]:
    """Decide every recorded verdict again from its recorded inputs, with today's gate code."""
    from stella_operators.gates.registry import build_gate, gate_types

    promo = ledger.get_promotion(promotion_id)
    specs = {}
    types = gate_types({spec.get("type") for spec in estate.environment(promo.environment).gates})
    for spec in estate.environment(promo.environment).gates:
        gate = build_gate(spec, types=types)
        specs[(gate.type, gate.name)] = gate
    results = []
    for recorded, inputs in ledger.gate_verdicts_for(promotion_id):
        key = (recorded.gate_type, recorded.gate_name)
        same = UpstreamGate() if recorded.gate_type == UpstreamGate.type else specs.get(key)
        if same is None:
            raise LookupError(f"gate {recorded.gate_name} ({recorded.gate_type}) is no longer in the estate; "
                              "replay needs its type to decide")
        results.append(ReplayResult(recorded.gate_name, recorded, replay_gate(same, inputs, at=recorded.evaluated_at)))
    return results
