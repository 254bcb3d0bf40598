"""The `policy` gate: declarative CEL rules over the promotion context (see gate.py for the context)."""

from stella_operators.cel import compile_expression
from stella_operators.gates.policy.gate import PolicyGate, Rule

__all__ = ["PolicyGate", "Rule", "compile_expression"]
