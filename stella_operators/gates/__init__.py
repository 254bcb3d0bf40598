"""Gates: every promotion passes only if every gate passes. One contract, one module per gate type."""

from stella_operators.gates.contract import (
    Gate,
    GateConfigError,
    GateVerdict,
    PromotionContext,
    Verdict,
    evaluate_gate,
    replay_gate,
)

__all__ = ["Gate", "GateConfigError", "GateVerdict", "PromotionContext", "Verdict", "evaluate_gate", "replay_gate"]
