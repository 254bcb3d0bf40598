"""Freeze windows (pure calendar logic) and the `freeze` gate."""

from stella_operators.gates.freeze.gate import FreezeGate
from stella_operators.gates.freeze.windows import (
    FreezeReason,
    FreezeState,
    FreezeWindow,
    Occurrence,
    WindowKind,
    active_windows,
    is_frozen,
    next_open,
)

__all__ = ["FreezeGate", "FreezeReason", "FreezeState", "FreezeWindow", "Occurrence", "WindowKind",
           "active_windows", "is_frozen", "next_open"]
